"""The audit pages and API over stored runs: which endpoint, which check, since when — with real
numbers, escaped, under the CSP, with target names that are URLs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from core.audit import AuditResult, CheckResult
from tests.e2e_helpers import Clock, harness
from tests.web.test_dashboard import _assert_safe

URL_NAME = "https://api.example.com:8443/v1"
EVIL = "<script>alert(1)</script>"


def _run(target: str, ts: float, hsts: str, *, cors: str = "pass") -> AuditResult:
    hsts_result = CheckResult("hsts", hsts, "max-age=63072000 (730 days)" if hsts == "pass" else
                              "no Strict-Transport-Security header",
                              None if hsts == "pass" else "send Strict-Transport-Security: max-age=31536000")
    return AuditResult(target, "https://api.example.com:8443/v1", ts, 3.25, (
        CheckResult("dns_resolves", "skip", "an IP address"), CheckResult("tls13", "warn", EVIL, "enable TLS 1.3"),
        hsts_result, CheckResult("cors", cors, "no CORS headers for a foreign Origin")))


async def test_audit_api_and_pages(tmp_path: Path) -> None:
    clock = Clock()
    t0 = clock() - 4 * 3600
    async with harness([], f"sqlite:///{tmp_path}/a.db", clock) as h:
        empty = await h.api.get("/audits")
        _assert_safe(empty)
        assert 'id="no-audits"' in empty.text and "inferwatch audit URL" in empty.text
        runs = [_run(URL_NAME, t0, "pass"), _run(URL_NAME, t0 + 3600, "fail"), _run(URL_NAME, t0 + 7200, "fail"),
                _run("other", t0, "pass")]
        h.store.observations.write_observations(audits=runs)

        listed = (await h.api.get("/api/v1/audits")).json()
        assert [a["target"] for a in listed] == [URL_NAME, "other"]
        newest = listed[0]
        assert newest["ts"] == t0 + 7200 and newest["duration_seconds"] == 3.25 and newest["failed"] is True
        assert newest["counts"] == {"pass": 1, "warn": 1, "fail": 1, "skip": 1}
        assert newest["checks"][2] == {"check": "hsts", "group": "http", "status": "fail", "value": 0.0,
                                       "observed": "no Strict-Transport-Security header",
                                       "fix": "send Strict-Transport-Security: max-age=31536000"}
        history = (await h.api.get("/api/v1/audits/" + quote(URL_NAME, safe=""))).json()
        assert history["target"] == URL_NAME and [r["ts"] for r in history["runs"]] == [t0 + 7200, t0 + 3600, t0]
        missing = await h.api.get("/api/v1/audits/nope")
        assert missing.status_code == 404 and "no audit named 'nope'" in missing.json()["detail"]

        page = await h.api.get("/audits")
        _assert_safe(page)
        link = "/audits/" + quote(URL_NAME, safe="")
        assert f'href="{link}"' in page.text and 'class="num bad">1<' in page.text

        detail = await h.api.get(link)
        _assert_safe(detail)
        text = detail.text
        assert EVIL not in text and "&lt;script&gt;" in text  # observed text is escaped
        row = text[text.index('id="check-hsts"'):]
        row = row[:row.index("</tr>")]
        assert 'class="bad status">fail<' in row and "send Strict-Transport-Security: max-age=31536000" in row
        assert "failing since 2023-11-14 19:13:20 UTC" in row  # the first failing run, t0 + 1 h
        assert row.count('class="cell ok"') == 1 and row.count('class="cell bad"') == 2
        cors = text[text.index('id="check-cors"'):]
        assert '<td class="since"></td>' in cors[:cors.index("</tr>")]  # passing: no "since"
        assert (await h.api.get("/audits/nope")).status_code == 404
