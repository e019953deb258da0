"""README stays true where a test can tell: the config reference is a config inferwatch accepts,
and every ``inferwatch <command>`` it shows exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from inferwatch.cli import build_parser
from inferwatch.config import parse

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str) -> str:
    rest = README[README.index(heading):]
    m = re.search(r"```yaml\n(.*?)```", rest, re.S)
    assert m is not None, heading
    return m.group(1)


def _env(text: str) -> dict[str, str]:
    """A plausible value for every ``${VAR}`` the text uses (URLs where the name says so)."""
    out = {}
    for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text):
        out[name] = ("https://hooks.slack.com/services/T0/B0/xxxxxxxxxxxxxxxx" if "WEBHOOK" in name or "URL" in name
                     else "R0123456789abcdef0123456789abcde" if "PD" in name else "x" * 24)
    return out


def test_the_config_reference_is_accepted_by_check_config() -> None:
    text = _block_after("### Config reference")
    env = _env(text)
    data = yaml.safe_load(text)
    cfg = parse(data, "README.md", env=env)
    assert cfg.backends and cfg.discovery and cfg.web.auth.tokens
    alerting = _block_after("### Alerting")
    cfg = parse({**data, **yaml.safe_load(alerting)}, "README.md", env={**env, **_env(alerting)})
    assert cfg.slos and cfg.notifiers and cfg.router.routes


def test_every_command_shown_exists() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = set(sub.choices)  # type: ignore[attr-defined]
    blocks = [re.sub(r"#.*$", "", b, flags=re.M) for b in re.findall(r"```.*?```", README, re.S)]  # not comments
    code = " ".join(blocks + re.findall(r"`[^`\n]+`", README))
    shown = set(re.findall(r"(?<![=\w])inferwatch ([a-z][a-z-]+)", code))  # not "O=inferwatch tests"
    missing = sorted(c for c in shown if c not in commands)
    assert not missing, f"README shows commands that do not exist: {missing}"
    assert {"run", "demo", "check-config", "grafana", "prometheus-rules", "alerts", "silence", "routes",
            "test-rules"} <= shown
