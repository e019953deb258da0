"""Label matchers, as routes, inhibit rules and silences write them. Pure.

``match: {severity: critical}`` compares a label's value exactly; ``match_re: {backend: "vllm-.*"}``
with a regex anchored at both ends; a silence writes both in one mapping (``"=~regex"``). A label
an alert lacks matches as the empty string. Every parse problem is reported with its path in one
``RoutingError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.labels import is_label_name

__all__ = ["Matcher", "RoutingError", "all_match", "matchers_from", "parse_matchers", "parse_silence_matchers"]


class RoutingError(ValueError):
    """Every problem in the routing config, each ``path: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Matcher:
    """``name`` equals ``value`` (``regex=False``) or fully matches it as a regex."""

    name: str
    value: str
    regex: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.regex:
            return re.fullmatch(self.value, got) is not None
        return got == self.value

    def __str__(self) -> str:
        return f"{self.name}{'=~' if self.regex else '='}{self.value!r}"


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matchers_from(raw: Any, regex: bool, where: str, problems: list[str]) -> list[Matcher]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of label: value, got {type(raw).__name__}")
        return []
    out: list[Matcher] = []
    for name, value in raw.items():
        if not isinstance(name, str) or not is_label_name(name):
            problems.append(f"{where}: invalid label name {name!r}")
            continue
        if not isinstance(value, str):
            problems.append(f"{where}.{name}: expected a string, got {type(value).__name__}")
            continue
        if regex:
            try:
                re.compile(value)
            except re.error as exc:
                problems.append(f"{where}.{name}: invalid regex {value!r}: {exc}")
                continue
        out.append(Matcher(name, value, regex))
    return out


def parse_matchers(match: Any = None, match_re: Any = None, *, where: str = "") -> tuple[Matcher, ...]:
    """Matchers from a ``match`` (exact) and a ``match_re`` (regex) mapping; ``RoutingError``."""
    problems: list[str] = []
    pre = f"{where}." if where else ""
    out = matchers_from(match, False, f"{pre}match", problems) + matchers_from(match_re, True, f"{pre}match_re", problems)
    if problems:
        raise RoutingError(problems)
    return tuple(out)


def parse_silence_matchers(raw: Any) -> tuple[Matcher, ...]:
    """Silence matchers: ``{label: value}`` exact, ``{label: "=~regex"}`` regex; at least one.

    >>> [str(m) for m in parse_silence_matchers({"backend": "=~vllm-.*", "alertname": "X"})]
    ["backend=~'vllm-.*'", "alertname='X'"]
    """
    if not isinstance(raw, Mapping) or not raw:
        raise RoutingError(["matchers: expected a non-empty mapping of label: value (or \"=~regex\")"])
    exact = {k: v for k, v in raw.items() if not (isinstance(v, str) and v.startswith("=~"))}
    regex = {k: v[2:] for k, v in raw.items() if isinstance(v, str) and v.startswith("=~")}
    problems: list[str] = []
    got = {m.name: m for m in matchers_from(exact, False, "matchers", problems) + matchers_from(regex, True, "matchers", problems)}
    if problems:
        raise RoutingError(problems)
    return tuple(got[k] for k in raw if k in got)
