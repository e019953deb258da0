"""The audit pages and API over stored runs: which endpoint, which check, since when — with real
numbers, escaped, under the CSP, with target names that are URLs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from core.audit import AuditResult, CheckResult, Status
from tests.e2e_helpers import Clock, harness
from tests.web.test_dashboard import _assert_safe

URL_NAME = "https://api.example.com:8443/v1"
EVIL = "<script>alert(1)</script>"


def _run(target: str, ts: float, hsts: Status, *, cors: Status = "pass") -> AuditResult:
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
        first = page.text[page.text.index(f'href="{link}"'):]
        first = first[:first.index("</tr>")]  # the URL-named endpoint: last run 2 h before now, 1/1/1/1
        assert "2 h ago" in first and "2023-11-14 20:13:20 UTC" in first
        assert ['class="num ok">1<', 'class="num warn">1<', 'class="num bad">1<', 'class="num na">1<'] == [
            c for c in ('class="num ok">1<', 'class="num warn">1<', 'class="num bad">1<', 'class="num na">1<')
            if c in first]
        assert 'href="/audits/other"' in page.text

        detail = await h.api.get(link)
        _assert_safe(detail)
        text = detail.text
        assert EVIL not in text and "&lt;script&gt;" in text  # observed text is escaped
        row = text[text.index('id="check-hsts"'):]
        row = row[:row.index("</tr>")]
        assert 'class="bad status">fail<' in row and "send Strict-Transport-Security: max-age=31536000" in row
        assert "failing since 2023-11-14 19:13:20 UTC" in row  # the first failing run, t0 + 1 h
        assert "(3 h ago)" in row
        cells = re.findall(r'<span class="cell (\w+)" title="([^"]*)"', row)
        assert cells == [("ok", "2023-11-14 18:13:20 UTC: pass — max-age=63072000 (730 days)"),
                         ("bad", "2023-11-14 19:13:20 UTC: fail — no Strict-Transport-Security header"),
                         ("bad", "2023-11-14 20:13:20 UTC: fail — no Strict-Transport-Security header")]
        # grouped: each group's title heads its rows, in checklist order
        assert re.findall(r'<th scope="rowgroup" rowspan="(\d)" class="group">(\w+)</th>', text) == [
            ("1", "DNS"), ("1", "TLS"), ("2", "HTTP")]
        assert row.count('class="cell ok"') == 1 and row.count('class="cell bad"') == 2
        cors = text[text.index('id="check-cors"'):]
        assert '<td class="since"></td>' in cors[:cors.index("</tr>")]  # passing: no "since"
        assert (await h.api.get("/audits/nope")).status_code == 404


def _checks(ts: float, **statuses: Status) -> AuditResult:
    return AuditResult("edge", "https://edge.example.com", ts, 1.0,
                       tuple(CheckResult(check, status, f"{check} {status} at {ts:.0f}",
                                         None if status == "pass" else f"fix {check}")
                             for check, status in statuses.items()))


async def test_since_counts_the_current_status_and_skips_do_not_break_it(tmp_path: Path) -> None:
    clock = Clock()
    t0 = clock() - 1800
    async with harness([], f"sqlite:///{tmp_path}/a.db", clock) as h:
        h.store.observations.write_observations(audits=[
            _checks(t0, tls_expiry="pass", stream_long="fail", rate_limit="warn"),
            _checks(t0 + 600, tls_expiry="warn", stream_long="skip", rate_limit="warn"),
            _checks(t0 + 1200, tls_expiry="fail", stream_long="fail", rate_limit="pass"),
            _checks(t0 + 1800, tls_expiry="fail", stream_long="fail", rate_limit="warn"),
        ])
        text = (await h.api.get("/audits/edge")).text

        def since(check: str) -> str:
            row = text[text.index(f'id="check-{check}"'):]
            return re.sub(r"<[^>]+>", "", re.findall(r'<td class="since">(.*?)</td>', row)[0])

        # warn then fail: failing since the first fail, not the warn before it
        assert since("tls_expiry") == "failing since 2023-11-14 22:03:20 UTC (10 min ago)"
        # fail, skip, fail, fail: a skipped run does not end the streak
        assert since("stream_long") == "failing since 2023-11-14 21:43:20 UTC (30 min ago)"
        assert since("rate_limit") == "warning since 2023-11-14 22:13:20 UTC (just now)"


async def test_history_strip_keeps_the_last_48_runs_and_api_the_last_7_days(tmp_path: Path) -> None:
    clock = Clock()
    now = clock()
    # 60 hourly runs in the last 60 h, and one 8 days ago that the 7-day history leaves out
    runs = [_checks(now - 8 * 86400, hsts="pass")]
    runs += [_checks(now - 3600 * i, hsts="fail" if i < 5 else "pass") for i in range(59, -1, -1)]
    async with harness([], f"sqlite:///{tmp_path}/a.db", clock) as h:
        h.store.observations.write_observations(audits=runs)
        api = (await h.api.get("/api/v1/audits/edge")).json()
        assert len(api["runs"]) == 60 and api["runs"][0]["ts"] == now and api["runs"][-1]["ts"] == now - 59 * 3600
        assert api["url"] == "https://edge.example.com"
        assert api["runs"][0]["checks"] == [{"check": "hsts", "group": "http", "status": "fail", "value": 0.0,
                                             "observed": f"hsts fail at {now:.0f}", "fix": "fix hsts"}]
        assert api["runs"][-1]["checks"][0]["value"] == 1.0
        text = (await h.api.get("/audits/edge")).text
        assert "history of the last 48 runs (newest right)" in text
        statuses = re.findall(r'<span class="cell (\w+)"', text)
        assert statuses == ["ok"] * 43 + ["bad"] * 5
        assert 'failing since 2023-11-14 18:13:20 UTC <span class="muted">(4 h ago)</span>' in text


async def test_odd_target_names_round_trip_through_links(tmp_path: Path) -> None:
    clock = Clock()
    odd = "https://h:8443/v1?model=a b#x%2F"
    async with harness([], f"sqlite:///{tmp_path}/a.db", clock) as h:
        h.store.observations.write_observations(audits=[AuditResult(
            odd, "https://h:8443/v1", clock() - 60, 0.5, (CheckResult("hsts", "skip", "plain http"),))])
        listed = await h.api.get("/audits")
        link = re.findall(r'<a href="(/audits/[^"]+)">', listed.text)
        assert link == ["/audits/" + quote(odd, safe="")] and "?" not in link[0] and "#" not in link[0]
        page = await h.api.get(link[0])
        assert page.status_code == 200 and "Audit: https://h:8443/v1?model=a b#x%2F" in page.text
        assert "1 min ago" in page.text and "warning since" not in page.text and "failing since" not in page.text
        api = await h.api.get("/api/v1/audits/" + quote(odd, safe=""))
        assert api.status_code == 200 and api.json()["target"] == odd
        skip = api.json()["runs"][0]["checks"][0]
        assert skip["status"] == "skip" and skip["value"] is None and api.json()["runs"][0]["counts"]["skip"] == 1
        # a prefix or a longer name is another target, not this one
        assert (await h.api.get("/api/v1/audits/" + quote("https://h:8443/v1", safe=""))).status_code == 404
        assert (await h.api.get("/audits/" + quote(odd + "/x", safe=""))).status_code == 404
