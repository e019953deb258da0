"""``inferwatch audit URL``: the table a person reads, the JSON a script reads, the exit status CI
gates on (1 when a check fails), and usage errors that say what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.audit_cli import main
from sim.certs import make_ca, make_leaf
from tests.audit_servers import KEY, MODEL, ApiApp, serve_hypercorn, write_chain

FAST = ["--stream-tokens", "16", "--long-tokens", "20", "--burst", "10", "--timeout", "10s"]


@pytest.fixture
def tls(tmp_path: Path) -> tuple[str, tuple[str, str]]:
    root = make_ca("cli root")
    return root.write_pem(tmp_path / "ca.pem"), write_chain(make_leaf(root, "localhost"), [], tmp_path)


def test_a_good_endpoint_prints_the_checklist_and_exits_0(tls: tuple[str, tuple[str, str]], capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert = tls
    monkeypatch.setenv("AUDIT_KEY", KEY)
    with serve_hypercorn(ApiApp(), cert=cert) as port:
        rc = main([f"https://localhost:{port}", "--api-key-env", "AUDIT_KEY", "--ca-file", ca, *FAST])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == f"inferwatch audit https://localhost:{port}"
    assert lines[1].startswith("16 checks: 16 pass, 0 warn, 0 fail (4 skipped) in ")
    for title in ("DNS", "TLS", "HTTP", "Streaming", "Rate limiting", "Auth"):
        assert title in lines
    assert "  PASS  http2                 ALPN selected h2" in lines
    assert "  skip  dns_resolves          localhost is resolved locally: no DNS to check" in lines
    assert "fix:" not in out and KEY not in out


def test_a_failing_endpoint_exits_1_with_fixes(tls: tuple[str, tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    ca, cert = tls
    app = ApiApp(headers={}, key=None, rate_limit=None)
    with serve_hypercorn(app, cert=cert, tls="tls12", h2=False) as port:
        rc = main([f"https://localhost:{port}", "--ca-file", ca, "--model", MODEL, *FAST])
    out = capsys.readouterr().out
    assert rc == 1
    assert "  FAIL  hsts                  no Strict-Transport-Security header" in out
    assert "fix: send Strict-Transport-Security: max-age=31536000; includeSubDomains" in out
    assert "  FAIL  auth_required         answered 200 to a request without credentials" in out
    assert "  WARN  tls13                 TLS 1.3 refused; negotiated TLSv1.2" in out


def test_json_output(tls: tuple[str, tuple[str, str]], capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert = tls
    monkeypatch.setenv("AUDIT_KEY", KEY)
    with serve_hypercorn(ApiApp(headers={"strict-transport-security": "max-age=600"}), cert=cert) as port:
        rc = main([f"https://localhost:{port}", "--json", "--api-key-env", "AUDIT_KEY", "--ca-file", ca,
                   "--skip", "streaming,rate_limit", *FAST])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0  # a warn does not fail the run
    by = {c["check"]: c for c in doc["checks"]}
    assert by["hsts"] == {"check": "hsts", "group": "http", "status": "warn", "value": 0.5,
                          "observed": "max-age=600 (0 days)",
                          "fix": "send Strict-Transport-Security: max-age=31536000; includeSubDomains"}
    assert by["stream_long"]["status"] == "skip" and by["stream_long"]["observed"] == "turned off (skip)"
    assert doc["counts"] == {"pass": 9, "warn": 4, "fail": 0, "skip": 7} and doc["failed"] is False
    assert list(by) == [c["check"] for c in doc["checks"]] and len(by) == 20


def test_usage_errors_exit_2_and_say_what_to_do(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    assert main(["https://api.example.test", "--api-key-env", "NOT_SET_KEY"]) == 2
    assert capsys.readouterr().err.strip() == (
        "inferwatch audit: --api-key-env NOT_SET_KEY: that environment variable is not set (export NOT_SET_KEY=… first)")
    assert main(["api.example.test"]) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["https://api.example.test", "--skip", "hstss"])
    assert exc.value.code == 2 and "unknown check 'hstss'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["https://api.example.test", "--stream-tokens", "1000"])
    assert exc.value.code == 2 and "1000 is out of range (8 to 256)" in capsys.readouterr().err
    assert main(["https://api.example.test", "--nameserver", "dns.example"]) == 2
    assert "--nameserver dns.example: expected an IP address" in capsys.readouterr().err


def test_the_installed_command(tls: tuple[str, tuple[str, str]]) -> None:
    ca, cert = tls
    exe = Path(sys.executable).parent / "inferwatch"
    with serve_hypercorn(ApiApp(key=None), cert=cert) as port:
        proc = subprocess.run([str(exe), "audit", f"https://localhost:{port}", "--ca-file", ca, "--skip",
                               "streaming,rate_limit"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # no auth: a fail
    assert "  FAIL  auth_required" in proc.stdout and proc.stderr == ""
