"""Config loading: typed values, ${ENV} secrets, and one exact message per kind of mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.units import parse_duration
from inferwatch.config import ConfigError, load, parse

DATA = Path(__file__).resolve().parent.parent / "testdata" / "config"
INVALID = sorted(DATA.glob("invalid-*.yaml"))


def test_good_config_is_typed_and_env_substituted() -> None:
    cfg = load(DATA / "good.yaml", env={"INFERWATCH_TOKEN": "s3cret"})
    assert cfg.scrape_interval == 15.0 and cfg.scrape_timeout == 5.0
    assert cfg.retention.raw == 86400.0 and cfg.retention.rollup_step == 60.0
    assert cfg.web.auth.tokens == ["s3cret"]
    assert cfg.web.host == "127.0.0.1" and cfg.web.port == 8000
    vllm, tgi, custom = cfg.backends
    assert vllm.metrics_url == "http://127.0.0.1:8001/metrics"
    assert vllm.probe is not None and vllm.probe.interval == 30.0
    assert tgi.url == "http://127.0.0.1:8002"  # trailing slash removed
    assert cfg.interval_for(tgi) == 90.0 and cfg.timeout_for(tgi) == 0.5
    assert cfg.interval_for(vllm) == 15.0 and cfg.timeout_for(vllm) == 5.0
    assert custom.options["metrics"] == {"queue_depth": "my_queue_len"}


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_config_names_field_and_fix(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text().rstrip("\n")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"scrape_interval": "soon", "backends": [{"name": "a", "engine": "x", "url": "ftp://h"}]}, env={})
    paths = sorted(p.split(":")[0] for p in info.value.problems)
    assert paths == ["backends[0].engine", "backends[0].url", "scrape_interval"]


def test_env_default_and_escape() -> None:
    cfg = parse({"storage": "${DB:-sqlite:///x.db}", "backends": [
        {"name": "$${literal}", "engine": "vllm", "url": "http://127.0.0.1:1"}]}, env={})
    assert cfg.storage == "sqlite:///x.db"
    assert cfg.backends[0].name == "${literal}"


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("15s", 15), ("5m", 300), ("1h30m", 5400), ("7d", 604800), (2, 2.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "inferwatch", "check-config", "-c", str(DATA / "invalid-engine.yaml")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "backends[2].engine: unknown engine 'vlm'" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = tmp_path / "ok.yaml"
    good.write_text("backends:\n  - {name: a, engine: vllm, url: http://127.0.0.1:1}\n")
    ok = subprocess.run([sys.executable, "-m", "inferwatch", "check-config", "-c", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "OK (1 backends)" in ok.stdout


def test_run_refuses_a_bad_config_with_the_same_message() -> None:
    res = subprocess.run([sys.executable, "-m", "inferwatch", "run", "-c", str(DATA / "invalid-engine.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "backends[2].engine: unknown engine 'vlm'" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)


def test_scrape_timeout_defaults_to_the_smaller_of_10s_and_the_interval() -> None:
    # as Prometheus: an interval under 10s without a timeout is not an error
    fast = parse({"scrape_interval": "1s", "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]},
                 env={})
    assert fast.timeout_for(fast.backends[0]) == 1.0
    slow = parse({"scrape_interval": "1m", "backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"}]},
                 env={})
    assert slow.timeout_for(slow.backends[0]) == 10.0
    with pytest.raises(ConfigError):  # an explicit timeout over the interval is still one
        parse({"scrape_interval": "1s", "scrape_timeout": "2s"}, env={})


def test_scrape_limits_default_and_per_backend_overrides() -> None:
    cfg = parse({"sample_limit": 1000, "backends": [
        {"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1"},
        {"name": "b", "engine": "vllm", "url": "http://127.0.0.1:2", "sample_limit": 0, "label_value_length_limit": 64},
    ]}, env={})
    a, b = (cfg.series_limits_for(x) for x in cfg.backends)
    assert (a.samples, a.labels, a.label_name_length, a.label_value_length) == (1000, 64, 256, 4096)
    assert (b.samples, b.label_value_length) == (0, 64)
    with pytest.raises(ConfigError) as info:
        parse({"backends": [{"name": "a", "engine": "vllm", "url": "http://127.0.0.1:1", "label_limit": -1}]}, env={})
    assert info.value.problems[0].startswith("backends[0].label_limit: ")


def test_a_huge_config_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (5 * 1024 * 1024) + b"\n")
    with pytest.raises(ConfigError) as info:
        load(big, env={})
    assert info.value.problems == ["the file is over 4 MiB; is it the config?"]


@pytest.mark.parametrize(("written", "meant"), [("off", "off"), ("on", "on"), ("no", "off"), ("yes", "on"),
                                                ("false", "off"), ("'off'", "off"), ("auto", "auto")])
def test_unquoted_on_off_is_the_word_not_a_boolean(tmp_path: Path, written: str, meant: str) -> None:
    """YAML 1.1 reads ``nvml: off`` (as the README writes it) as False: it means "off"."""
    path = tmp_path / "inferwatch.yaml"
    path.write_text(f"gpus: {{nvml: {written}}}\nbackends: []\n")
    assert load(path, env={}).gpus.nvml == meant


def test_a_wrong_nvml_word_still_names_the_choices(tmp_path: Path) -> None:
    path = tmp_path / "inferwatch.yaml"
    path.write_text("gpus: {nvml: sometimes}\n")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert "gpus.nvml" in str(info.value) and "'auto'" in str(info.value), str(info.value)
