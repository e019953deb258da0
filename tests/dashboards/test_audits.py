"""The audit pages' view of stored runs: which checks a page lists, their order and group, the
history strip and "since when", computed without a server."""

from __future__ import annotations

from core.audit import AuditResult, CheckResult, Status
from dashboards.audits import HISTORY_CELLS, by_group, checklist, run_json


def _run(ts: float, **statuses: Status) -> AuditResult:
    return AuditResult("api", "https://api.example.com", ts, 2.0,
                       tuple(CheckResult(c, s, f"{c}@{ts:.0f}") for c, s in statuses.items()))


def test_rows_follow_the_newest_run_in_checklist_order() -> None:
    runs = [_run(300.0, auth_required="fail", dns_ttl="warn", tls13="pass", new_check="fail"),
            _run(100.0, hsts="fail", dns_ttl="pass"),  # hsts left the checklist since: not listed
            _run(200.0, dns_ttl="warn", auth_required="pass")]
    rows = checklist(runs)
    assert [r.check for r in rows] == ["dns_ttl", "tls13", "auth_required", "new_check"]
    assert [(r.group, r.asks) for r in rows][-1] == ("other", "new_check")  # unknown names still shown, last
    assert [(g.title, len(g.rows)) for g in by_group(rows)] == [("DNS", 1), ("TLS", 1), ("Auth", 1), ("other", 1)]
    dns = rows[0]
    assert [(c.ts, c.status, c.css) for c in dns.history] == [(100.0, "pass", "ok"), (200.0, "warn", "warn"),
                                                               (300.0, "warn", "warn")]
    assert dns.since == 200.0 and dns.css == "warn"
    assert rows[1].since is None  # a pass has no "since"
    assert rows[2].since == 300.0 and [c.ts for c in rows[2].history] == [200.0, 300.0]  # absent in the first run
    assert rows[3].since == 300.0


def test_history_strip_is_capped_and_since_reaches_past_it() -> None:
    runs = [_run(float(t), hsts="fail") for t in range(HISTORY_CELLS + 20)]
    row = checklist(runs)[0]
    assert len(row.history) == HISTORY_CELLS and row.history[-1].ts == HISTORY_CELLS + 19
    assert row.since == 0.0  # the streak began before the strip's first cell


def test_no_runs_no_rows() -> None:
    assert checklist([]) == [] and by_group([]) == []


def test_run_json() -> None:
    out = run_json(_run(100.0, hsts="fail", tls_ocsp="skip", mystery="warn"))
    assert out["counts"] == {"pass": 0, "warn": 1, "fail": 1, "skip": 1} and out["failed"] is True
    assert out["duration_seconds"] == 2.0 and out["ts"] == 100.0
    assert [(c["check"], c["group"], c["value"]) for c in out["checks"]] == [
        ("hsts", "http", 0.0), ("tls_ocsp", "tls", None), ("mystery", None, 0.5)]
