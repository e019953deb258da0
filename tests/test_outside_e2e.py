"""End to end for what users feel and what the GPUs hold: the collector runs streaming probes
against the simulated fleet (plain and HTTPS), checks TLS certificates, reads GPUs through a
fake NVML, and the API and /metrics report it all."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sim.certs import DAY, make_ca, make_leaf, server_context
from sim.engines import make_renderer
from sim.state import Profile, SimBackend
from tests.e2e_helpers import Clock, harness
from tests.fake_nvml import FakeGpu, FakeNvml
from tests.tls_helpers import tls_server

GiB = 2**30
FAST = Profile(stream_ttft=0.1, stream_token_interval=0.01)


@pytest.mark.slow
async def test_probes_certificates_and_gpus_reach_api_and_metrics(store_url: str, tmp_path: Path) -> None:
    now = time.time()
    root = make_ca("inferwatch e2e root")
    leaf = make_leaf(root, "127.0.0.1", not_after=now + 40 * DAY)
    ca_file = root.write_pem(tmp_path / "ca.pem")
    soon = make_leaf(root, "127.0.0.1", not_after=now + 5 * DAY)
    plain = SimBackend("plain", make_renderer("vllm"), ("m",), FAST, seed=1, now=now)
    secure = SimBackend("secure", make_renderer("vllm"), ("m",), FAST, seed=2, now=now)
    fake = FakeNvml([FakeGpu("GPU-aaaa", used=30 * GiB), FakeGpu("GPU-bbbb", used=10 * GiB, util_pct=0)])
    probe = {"model": "m", "max_tokens": 8, "interval": "30s", "timeout": "5s", "targets": {"ttft": "1s", "itl": "50ms"}}
    clock = Clock(now)
    async with tls_server(server_context(soon, [], tmp_path)) as expiring_port:
        async with harness(
            [plain, secure], store_url, clock,
            fleet_ssl={"secure": server_context(leaf, [], tmp_path)},
            backend_extra={"plain": {"probe": probe}, "secure": {"probe": probe, "ca_file": ca_file}},
            tls=[{"url": f"127.0.0.1:{expiring_port}", "ca_file": ca_file}],
            nvml=fake,
        ) as h:
            await h.collector.scrape_once()
            for _ in range(3):
                await h.collector.observe_once()
            got = await h.backends()
            certs = {c["target"]: c for c in (await h.api.get("/api/v1/certificates")).json()}
            gpus = (await h.api.get("/api/v1/gpus")).json()
            metrics = (await h.api.get("/metrics")).text

    # probes: what the simulator was told to do, measured from outside
    for name in ("plain", "secure"):
        p = got[name]["probe"]
        assert p["count"] == 3 and p["success_ratio"] == 1.0, p
        assert abs(p["ttft"]["p50"] - 0.1) < 0.03, p["ttft"]  # connect (+TLS) included; loopback
        assert abs(p["tokens_per_second"]["p50"] - 100.0) / 100.0 < 0.05, p["tokens_per_second"]
        assert p["goodput_ratio"] == 1.0  # TTFT 0.1 s <= 1 s and ITL 10 ms <= 50 ms
        assert p["connect"]["p50"] > 0
    assert got["plain"]["probe"]["tls"] is None
    assert got["secure"]["probe"]["tls"]["p50"] > 0
    # certificates: the https backend (checked automatically) and the configured expiring endpoint
    secure_target = h.fleet.url("secure").split("//")[1]
    c = certs[secure_target]
    assert c["verified"] is True and c["hostname_ok"] is True and c["error"] is None
    assert c["not_after"] == leaf.not_after and 39.9 < c["days_left"] < 40.1
    e = certs[f"127.0.0.1:{expiring_port}"]
    assert 4.9 < e["days_left"] < 5.1 and e["verified"] is True
    # GPUs: exact numbers from the (fake) NVML layer
    by_uuid = {g["uuid"]: g for g in gpus if g.get("uuid")}
    assert by_uuid["GPU-aaaa"]["memory_used_bytes"] == 30 * GiB
    assert by_uuid["GPU-bbbb"]["utilization_ratio"] == 0.0
    assert by_uuid["GPU-aaaa"]["power_watts"] == pytest.approx(71.234)
    # /metrics under the DESIGN.md names
    fams = {f.name: f for f in text_string_to_metric_families(metrics)}

    def value(family: str, **labels: str) -> float:
        found = [s.value for s in fams[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (family, labels, fams[family].samples)
        return found[0]

    assert value("inferwatch_cert_expiry_timestamp_seconds", target=secure_target) == leaf.not_after
    assert value("inferwatch_cert_chain_expiry_timestamp_seconds", target=f"127.0.0.1:{expiring_port}") == soon.not_after
    assert value("inferwatch_gpu_memory_used_bytes", uuid="GPU-aaaa") == 30 * GiB
    assert value("inferwatch_gpu_memory_total_bytes", uuid="GPU-bbbb") == FakeGpu("x").total  # as nvidia-smi shows
    assert value("inferwatch_probe_ttft_seconds", backend="plain", quantile="0.5") == got["plain"]["probe"]["ttft"]["p50"]
    assert value("inferwatch_probe_success", backend="secure") == 1.0
    assert value("inferwatch_probe_goodput_ratio", backend="secure") == 1.0
    promtool = shutil.which("promtool")
    if promtool:
        res = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


async def test_without_a_gpu_driver_the_api_says_why(tmp_path: Path) -> None:
    clock = Clock()
    sim = SimBackend("a", make_renderer("vllm"), ("m",), Profile(), seed=1, now=clock())
    async with harness([sim], f"sqlite:///{tmp_path}/g.db", clock, gpus={"nvml": "auto"}) as h:  # real pynvml, no driver
        h.collector.start_nvml()
        gpus = (await h.api.get("/api/v1/gpus")).json()
        metrics = (await h.api.get("/metrics")).text
    status = [g for g in gpus if g.get("source") == "nvml" and g.get("enabled") is False]
    assert len(status) == 1 and "NVML" in status[0]["reason"], gpus
    assert "inferwatch_gpu_memory_used_bytes{" not in metrics


@pytest.mark.slow
async def test_broken_stream_is_reported_with_its_kind(tmp_path: Path) -> None:
    now = time.time()
    sim = SimBackend("cut", make_renderer("vllm"), ("m",), FAST, seed=3, now=now)
    sim.incident.stream_fault = "cut"
    clock = Clock(now)
    async with harness([sim], f"sqlite:///{tmp_path}/c.db", clock,
                       backend_extra={"cut": {"probe": {"model": "m", "max_tokens": 8, "timeout": "5s"}}}) as h:
        await h.collector.observe_once()
        p = (await h.backends())["cut"]["probe"]
    assert p["success_ratio"] == 0.0 and p["goodput_ratio"] == 0.0
    assert p["last_error"]["kind"] == "stream_cut"


DATA = Path(__file__).resolve().parent / "testdata" / "expositions"


async def test_triton_and_dcgm_gpus_join_the_gpu_vocabulary(tmp_path: Path) -> None:
    from exporters.gpu_scrape import WANTED_DCGM, WANTED_TRITON, from_dcgm, from_triton
    from exporters.parser import parse
    from tests.tls_helpers import raw_server

    triton_body = (DATA / "triton-gpu-2xl40s.txt").read_bytes()
    dcgm_body = (DATA / "dcgm-4.5.3-h100x2.txt").read_bytes()

    async def dcgm(reader: Any, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(dcgm_body)).encode() + b"\r\n\r\n" + dcgm_body)
        await writer.drain()

    clock = Clock()
    sim = SimBackend("triton-gpu", make_renderer("triton"), ("llama-3.1-8b",), Profile(), seed=1, now=clock())
    sim.incident.body = triton_body  # a real-shaped Triton body with nv_gpu_* families
    async with raw_server(dcgm) as dcgm_port:
        async with harness([sim], f"sqlite:///{tmp_path}/gpu.db", clock,
                           gpus={"nvml": "off", "dcgm": [{"url": f"http://127.0.0.1:{dcgm_port}/metrics"}]}) as h:
            results = await h.collector.scrape_once()
            assert results[0].up, results[0].reason
            await h.collector.observe_once()
            gpus = [g for g in (await h.api.get("/api/v1/gpus")).json() if g.get("uuid")]
    expected_triton = from_triton(parse(triton_body, keep=WANTED_TRITON), "127.0.0.1")
    expected_dcgm = from_dcgm(parse(dcgm_body, keep=WANTED_DCGM), "127.0.0.1")
    assert len(expected_triton) == 2 and len(expected_dcgm) == 2
    by_source = {s: {g["uuid"]: g for g in gpus if g["source"] == s} for s in ("triton", "dcgm")}
    for source, expected in (("triton", expected_triton), ("dcgm", expected_dcgm)):
        assert set(by_source[source]) == {g.uuid for g in expected}
        for g in expected:
            got = by_source[source][g.uuid]
            assert (got["memory_used_bytes"], got["memory_total_bytes"], got["power_watts"]) == (
                g.memory_used_bytes, g.memory_total_bytes, g.power_watts)
            assert got["host"] == g.host


@pytest.mark.slow
async def test_a_probe_never_overlaps_itself(tmp_path: Path) -> None:
    import asyncio

    now = time.time()
    sim = SimBackend("stall", make_renderer("vllm"), ("m",), FAST, seed=4, now=now)
    sim.incident.stream_fault = "stall"  # every probe hangs until its own timeout
    async with harness([sim], f"sqlite:///{tmp_path}/s.db", Clock(now),
                       backend_extra={"stall": {"probe": {"model": "m", "interval": "0.1s", "timeout": "0.4s"}}}) as h:
        h.collector.clock = time.time
        probe = next(s for s in h.collector.sources if s.name == "probe stall")
        task = asyncio.create_task(h.collector.run(probe))
        await asyncio.sleep(1.5)
        task.cancel()
        await h.collector.flush()
        probes = h.store.observations.probe_results_between(0, 2e9, ["stall"])
    assert 2 <= len(probes) <= 4, probes  # 1.5 s / 0.4 s per probe, not 1.5 s / 0.1 s
    assert all(p.error_kind == "timeout" for p in probes)
    starts = [p.ts for p in probes]
    assert all(b - a >= 0.39 for a, b in zip(starts, starts[1:], strict=False)), starts
