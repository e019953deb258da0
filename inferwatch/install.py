"""Is this installation whole? The wheel installs top-level import packages with common names
(``core``, ``storage``, ``collector``, ``exporters``, ``alerts``, ``dashboards``, ``web``,
``sim``); another distribution installed into the same environment may ship a package of the
same name and shadow ours (or be shadowed by it). ``foreign_packages`` finds that before anything
else is imported, so the command says so instead of failing with an ImportError deep inside.

Install inferwatch into an environment of its own (``pipx install inferwatch``, or its own
virtual environment) and it cannot happen: README, "Install".
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["OWN_PACKAGES", "foreign_packages"]

OWN_PACKAGES = ("core", "storage", "exporters", "collector", "alerts", "dashboards", "web", "sim")


def foreign_packages(root: Path | None = None) -> list[str]:
    """One line per package name that does not resolve to inferwatch's own (the folder beside
    this ``inferwatch`` package), saying what it resolves to instead."""
    home = (root if root is not None else Path(__file__).resolve().parent.parent).resolve()
    problems: list[str] = []
    for name in OWN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            problems.append(f"{name}: cannot be found ({exc})")
            continue
        if spec is None:
            problems.append(f"{name}: not installed")
            continue
        places = [Path(p).resolve() for p in (spec.submodule_search_locations or [])]
        if spec.origin and not places:
            places = [Path(spec.origin).resolve().parent]
        if not places or all(place.parent != home for place in places):
            where = ", ".join(str(p) for p in places) or str(spec.origin)
            problems.append(f"{name}: resolves to {where}, not to inferwatch's own ({home / name})")
    return problems
