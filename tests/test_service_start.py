"""What the service says when it starts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from inferwatch.config import parse
from inferwatch.service import Service
from inferwatch.stores import Stores


async def _start_stop(tmp_path: Path, **extra: object) -> None:
    cfg = parse({"storage": f"sqlite:///{tmp_path / 'iw.db'}", "web": {"listen": "127.0.0.1:8123"},
                 "backends": [{"name": "a", "url": "http://127.0.0.1:9/metrics", "engine": "vllm"}],
                 "notifiers": {"slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/secretpart"}},
                 **extra}, "<test>")
    stores = Stores.open(cfg.storage)
    stores.migrate()
    service = Service(cfg, stores)
    await service.start()
    await service.stop()
    stores.close()


async def test_notifiers_without_external_url_on_loopback_warn_once(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        await _start_stop(tmp_path)
    warnings = [r.getMessage() for r in caplog.records if "external_url" in r.getMessage()]
    assert warnings == ["[service] external_url is not set: links in notifications will point at "
                        "http://127.0.0.1:8123, which other people cannot open; set external_url to the address "
                        "your team reaches inferwatch at (e.g. external_url: https://inferwatch.example.com)"]
    assert "secretpart" not in caplog.text


async def test_with_external_url_there_is_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        await _start_stop(tmp_path, external_url="https://inferwatch.example.com")
    assert "external_url" not in caplog.text
