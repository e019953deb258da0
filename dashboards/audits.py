"""What the audit pages and API show of stored audit runs: a run as JSON, and the checklist of
one endpoint with each check's recent history and "since when" it has had its current verdict
(an on-call's "which check, since when"). Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collector.summary import Json
from core.audit import CHECKS, GROUPS, AuditResult, CheckResult, check_order

__all__ = ["HISTORY_CELLS", "Cell", "CheckGroup", "CheckRow", "by_group", "checklist", "run_json", "since"]

#: runs drawn in a check's history strip (newest right)
HISTORY_CELLS = 48
#: status -> the CSS class the pages colour it with
STATUS_CLASS = {"pass": "ok", "warn": "warn", "fail": "bad", "skip": "na"}


def run_json(a: AuditResult) -> Json:
    """One run as the API gives it."""
    return {
        "target": a.target, "url": a.url, "ts": a.ts, "duration_seconds": round(a.duration, 3),
        "counts": dict(a.counts()), "failed": a.failed,
        "checks": [{"check": c.check, "group": CHECKS[c.check][0] if c.check in CHECKS else None,
                    "status": c.status, "value": c.value, "observed": c.observed, "fix": c.fix} for c in a.checks],
    }


@dataclass(frozen=True, slots=True)
class Cell:
    ts: float
    status: str
    observed: str

    @property
    def css(self) -> str:
        return STATUS_CLASS.get(self.status, "na")


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One checklist item of an endpoint: its latest verdict, since when it has had that
    verdict (``since``, see :func:`since`; None when it passes or is skipped), and its last
    runs, oldest first (at most ``HISTORY_CELLS``)."""

    group: str
    check: str
    asks: str
    latest: CheckResult
    since: float | None
    history: tuple[Cell, ...]

    @property
    def css(self) -> str:
        return STATUS_CLASS.get(self.latest.status, "na")


@dataclass(frozen=True, slots=True)
class CheckGroup:
    """The rows of one checklist group (``title``: its ``GROUPS`` title), in checklist order."""

    title: str
    rows: tuple[CheckRow, ...]


def since(seen: Sequence[tuple[float, CheckResult]]) -> float | None:
    """When the newest verdict of one check began: the time of the first run of its current
    streak of that status, ``seen`` being (run time, verdict) oldest first. A skipped run
    neither breaks nor starts a streak; a pass or a skip has no "since" (None).

    >>> from core.audit import CheckResult as R
    >>> since([(1.0, R("hsts", "pass", "")), (2.0, R("hsts", "fail", "")), (3.0, R("hsts", "skip", "")),
    ...        (4.0, R("hsts", "fail", ""))])
    2.0
    >>> since([(1.0, R("tls_expiry", "warn", "")), (2.0, R("tls_expiry", "fail", ""))])
    2.0
    >>> since([(1.0, R("hsts", "fail", "")), (2.0, R("hsts", "pass", ""))]) is None
    True
    """
    if not seen or seen[-1][1].status not in ("warn", "fail"):
        return None
    status = seen[-1][1].status
    start = seen[-1][0]
    for ts, r in reversed(seen):
        if r.status == "skip":
            continue
        if r.status != status:
            break
        start = ts
    return start


def checklist(runs: Sequence[AuditResult]) -> list[CheckRow]:
    """Rows of the newest run's checks, in checklist order, from ``runs`` (any order).

    >>> from core.audit import AuditResult, CheckResult
    >>> runs = [AuditResult("a", "u", ts, 1.0, (CheckResult("hsts", s, s),))
    ...         for ts, s in ((100.0, "pass"), (200.0, "fail"), (300.0, "fail"))]
    >>> row = checklist(runs)[0]
    >>> row.latest.status, row.since, [c.status for c in row.history]
    ('fail', 200.0, ['pass', 'fail', 'fail'])
    """
    ordered = sorted(runs, key=lambda a: a.ts)
    if not ordered:
        return []
    per: dict[str, list[tuple[float, CheckResult]]] = {}
    for a in ordered:
        for c in a.checks:
            per.setdefault(c.check, []).append((a.ts, c))
    rows: list[CheckRow] = []
    for c in sorted(ordered[-1].checks, key=lambda c: check_order(c.check)):
        seen = per[c.check]
        group, asks = CHECKS.get(c.check, ("other", c.check))
        history = tuple(Cell(ts, r.status, r.observed) for ts, r in seen[-HISTORY_CELLS:])
        rows.append(CheckRow(GROUPS.get(group, group), c.check, asks, c, since(seen), history))
    return rows


def by_group(rows: Sequence[CheckRow]) -> list[CheckGroup]:
    """``rows`` (as :func:`checklist` orders them) cut into their groups, order kept.

    >>> from core.audit import AuditResult, CheckResult
    >>> run = AuditResult("a", "u", 1.0, 1.0, tuple(CheckResult(c, "pass", "") for c in ("hsts", "tls13", "cors")))
    >>> [(g.title, [r.check for r in g.rows]) for g in by_group(checklist([run]))]
    [('TLS', ['tls13']), ('HTTP', ['hsts', 'cors'])]
    """
    groups: list[CheckGroup] = []
    for r in rows:
        if groups and groups[-1].title == r.group:
            groups[-1] = CheckGroup(r.group, (*groups[-1].rows, r))
        else:
            groups.append(CheckGroup(r.group, (r,)))
    return groups
