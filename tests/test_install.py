"""The installation check: inferwatch's package names resolve to its own packages, and when
another distribution's package shadows one, the command says which and how to install instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inferwatch.install import OWN_PACKAGES, foreign_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_name_resolves_to_ours() -> None:
    assert foreign_packages() == []
    assert set(OWN_PACKAGES) | {"inferwatch"} == {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}


def test_a_shadowing_package_stops_the_command_with_the_fix(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "web"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not inferwatch')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    res = subprocess.run([sys.executable, "-m", "inferwatch", "check-config", "-c", str(ROOT / "tests/testdata/config/good.yaml")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"web: resolves to {fake}, not to inferwatch's own ({ROOT / 'web'})" in res.stderr
    assert "pipx install inferwatch" in res.stderr
    assert "Traceback" not in res.stderr
