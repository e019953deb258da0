"""Every start-up failure a user can cause is one or two lines naming the thing, the setting and
the fix, exit code 1 (2 for a bad flag), no traceback unless ``--log-level debug``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferwatch", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def _config(tmp: Path, **extra: object) -> Path:
    path = tmp / "inferwatch.yaml"
    path.write_text(yaml.safe_dump({"storage": f"sqlite:///{tmp / 'iw.db'}", "web": {"listen": "127.0.0.1:0"},
                                    "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:9"}],
                                    **extra}))
    return path


def _short(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, res.stderr
    return lines


@contextlib.contextmanager
def _busy_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


def test_demo_on_a_port_in_use_says_how_to_choose_another(tmp_path: Path) -> None:
    with _busy_port() as port:
        res = _run("demo", "--port", str(port), "--duration", "1", cwd=tmp_path)
    assert res.returncode == 1
    (line,) = _short(res)
    assert line == (f"inferwatch: cannot listen on 127.0.0.1:{port}: the address is already in use (another "
                    f"inferwatch?). Stop what uses it, or choose another port with --port (make demo PORT=8001).")
    assert "dashboard" not in res.stdout  # no URL printed that does not work


def test_run_on_a_port_in_use_names_web_listen(tmp_path: Path) -> None:
    with _busy_port() as port:
        cfg = _config(tmp_path, web={"listen": f"127.0.0.1:{port}"})
        res = _run("run", "-c", str(cfg), cwd=tmp_path)
    assert res.returncode == 1
    (line,) = _short(res)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "web.listen in the config" in line


def test_an_sqlite_path_that_cannot_be_opened(tmp_path: Path) -> None:
    cfg = _config(tmp_path, storage="sqlite:////nonexistent-dir/inferwatch.db")
    res = _run("run", "-c", str(cfg), cwd=tmp_path)
    assert res.returncode == 1
    (line,) = _short(res)
    assert line.startswith("inferwatch: cannot open the SQLite database /nonexistent-dir/inferwatch.db "
                           "(storage: sqlite:////nonexistent-dir/inferwatch.db): unable to open database file.")
    assert "folder exists and is writable" in line
    debug = _run("--log-level", "debug", "run", "-c", str(cfg), cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr  # the details, when asked for


def test_postgresql_not_reachable_hides_the_password(tmp_path: Path) -> None:
    cfg = _config(tmp_path, storage="postgresql+psycopg://iw:hunter2-secret@127.0.0.1:1/iwdb")
    res = _run("run", "-c", str(cfg), cwd=tmp_path)
    assert res.returncode == 1
    (line,) = _short(res)
    assert line.startswith("inferwatch: cannot use the database iwdb on 127.0.0.1:1 "
                           "(storage: postgresql+psycopg://iw:***@127.0.0.1:1/iwdb): ")
    assert "Is the server running and reachable" in line
    assert "hunter2" not in res.stderr + res.stdout


def test_grafana_into_a_folder_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _run("grafana", "-o", str(blocker / "sub"), cwd=tmp_path)
    assert res.returncode == 1
    (line,) = _short(res)
    assert line.startswith(f"inferwatch grafana: cannot write into {blocker / 'sub'}: ")
    assert "choose a folder you can write with -o" in line


def test_a_bad_log_level_is_refused(tmp_path: Path) -> None:
    res = _run("--log-level", "LOUD", "check-config", "-c", str(_config(tmp_path)), cwd=tmp_path)
    assert res.returncode == 2
    assert "'LOUD' is not a log level; use one of debug, info, warning, error, critical" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_start_is_one_quiet_line(tmp_path: Path) -> None:
    """`inferwatch run` logs one line with version, storage, backends and URL; no alembic chatter."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(tmp_path, web={"listen": f"127.0.0.1:{port}"})
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "run", "-c", str(cfg)], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=20)[0]
    assert "inferwatch 0.1.0: 1 backends, storage sqlite:///" in first and f"http://127.0.0.1:{port}/" in first
    assert "alembic" not in first + rest and "Context impl" not in first + rest
    # after it: only what happened (the unreachable backend), nothing about starting
    assert all("collector.scrape" in line for line in rest.splitlines() if line.strip()), rest
