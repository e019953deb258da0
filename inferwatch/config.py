"""The configuration file: YAML -> one frozen, typed ``Config``, validated once at start.

The only module that reads YAML or the environment. ``load(path)`` returns a ``Config`` or
raises ``ConfigError`` carrying *every* problem, each with the path of the field it concerns::

    inferwatch.yaml: backends[2].engine: unknown engine 'vlm'; expected one of vllm, tgi, ...

Each package owns the schema of its section, and ``Config`` composes them, in import order:

* ``collector.config.CollectorSettings``: ``scrape_*``, ``backends``, ``gpus``, ``tls`` …;
* ``alerts.config.AlertSettings`` (with the collector's: ``AlertingConfig``): ``rules``,
  ``slos``, ``notifiers``, ``routes`` …;
* ``web.config.WebSettings`` (with the above: ``AppConfig``): ``web``;
* ``storage.config.StorageSettings``: ``storage``, ``retention``.

Secrets may be written ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) anywhere a string is
expected; ``$${`` is a literal ``${``. Durations are ``500ms``, ``15s``, ``5m``, ``1h``, ``7d``
or combinations (``1h30m``); a bare number means seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from alerts.config import alerting_problems
from collector.config import collector_problems
from storage.config import StorageSettings
from web.config import AppConfig

__all__ = ["Config", "ConfigError", "load", "parse"]

_ENV_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: YAML as ``yaml.safe_load`` gives it
Yaml = None | bool | int | float | str | list["Yaml"] | dict[str, "Yaml"]


class Config(AppConfig, StorageSettings):
    """The whole file: every package's section, flat at the top level as users write it."""


class ConfigError(Exception):
    """Every problem found in a config file, each as ``path: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _substitute(node: Yaml, path: str, env: Mapping[str, str], problems: list[str]) -> Yaml:
    if isinstance(node, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path or '(top)'}: environment variable {name} is not set")
            return ""
        return _ENV_RE.sub(repl, node)
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), env, problems) for k, v in node.items()}
    return node


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: ErrorDetails) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    if kind == "extra_forbidden":
        return "unknown field; check its spelling against the config reference in README.md"
    if kind == "missing":
        return "required field is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


#: what a config file may be: its size, its nesting, and how many values it holds once every
#: YAML alias is expanded (a "billion laughs" file is a few hundred bytes that expand to 10^9)
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 200_000


def _shape_problem(data: object) -> str | None:
    """Why ``data`` is too deep or (aliases expanded) too large to be a config, if it is."""
    stack: list[tuple[object, int]] = [(data, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return (f"more than {MAX_VALUES} values once YAML aliases are expanded; "
                    "is an alias (*name) repeated inside what it names?")
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            seen += len(node)  # the keys
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def parse(data: object, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate already-loaded YAML data. Raises ``ConfigError`` listing every problem."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must hold a mapping (key: value lines) at the top level"])
    shape = _shape_problem(data)
    if shape is not None:
        raise ConfigError(source, [shape])
    data = _substitute(data, "", os.environ if env is None else env, problems)
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            where = _loc(tuple(err["loc"]))
            problems.append(f"{where}: {_message(err)}" if where else _message(err))
    if cfg is not None:
        problems.extend(collector_problems(cfg))
        problems.extend(alerting_problems(cfg))
    if problems:
        raise ConfigError(source, problems)
    assert cfg is not None
    return cfg


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read the file: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(str(p), [f"the file is over {MAX_FILE_BYTES // (1024 * 1024)} MiB; is it the config?"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(str(p), [f"line {line}: not UTF-8 text (byte offset {exc.start}); save the file as UTF-8"]
                          ) from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(str(p), [f"nested more than {MAX_DEPTH} levels deep"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(p), [f"{where}YAML syntax error: {problem}"]) from None
    return parse(data, str(p), env)
