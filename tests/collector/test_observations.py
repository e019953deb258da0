"""Probe results, certificate checks and GPU samples round-trip through the store (SQLite and
PostgreSQL), and the API's probe figures are exact statistics of the raw probes."""

from __future__ import annotations

import math

import pytest

from collector.query import certificate_view, probe_summary
from core.numbers import exact_quantile
from core.samples import CertResult, GpuProcess, GpuSample, ProbeResult
from inferwatch.stores import Stores
from storage.retention import Retention


def probe(ts: float, ttft: float | None, ok: bool = True, itl: tuple[float, ...] = (0.02, 0.04),
          **kw: object) -> ProbeResult:
    return ProbeResult(backend="b", ts=ts, ok=ok, ttft_seconds=ttft, e2e_seconds=None if ttft is None else ttft + 1,
                       output_tokens=3, tokens_from_usage=True, tokens_per_second=50.0 if ok else None, itl=itl,
                       **kw)  # type: ignore[arg-type]


def test_probe_results_round_trip(store: Stores) -> None:
    results = [probe(10.0, 0.25, dns_seconds=0.001, connect_seconds=0.002, tls_seconds=0.01, tls_version="TLSv1.3"),
               probe(20.0, None, ok=False, error_kind="http_5xx", error="HTTP 503: overloaded", status=503, itl=())]
    store.observations.write_observations(probes=results)
    got = store.observations.probe_results_between(0.0, 20.0)
    assert got == results
    assert store.observations.probe_results_between(10.0, 20.0) == results[1:]  # since < ts <= until
    assert store.observations.probe_results_between(0.0, 100.0, backends=["other"]) == []


def test_certificates_keep_the_latest_check_per_target(store: Stores) -> None:
    old = CertResult("api.example.com:443", 10.0, True, not_after=2e9, chain_not_after=1.9e9, issuer="CN=CA",
                     subject="CN=api.example.com", sans=("api.example.com",), verified=True, hostname_ok=True,
                     tls_version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384")
    new = CertResult("api.example.com:443", 20.0, False, error="connection refused")
    store.observations.write_observations(certs=[old])
    store.observations.write_observations(certs=[new])
    store.observations.write_observations(certs=[old])  # a late, older result never overwrites a newer one
    assert store.observations.certificate_results() == [new]


def test_gpu_samples_latest_and_series(store: Stores) -> None:
    g = GpuSample(host="h", index="0", uuid="GPU-1", name="H100", memory_used_bytes=40 * 2**30,
                  memory_free_bytes=40 * 2**30, memory_total_bytes=80 * 2**30, utilization_ratio=0.5,
                  temperature_celsius=60.0, power_watts=300.5, processes=(GpuProcess(42, "python", 2**30),),
                  errors=("power: Not Supported",))
    later = GpuSample(host="h", index="0", uuid="GPU-1", memory_used_bytes=41 * 2**30)
    store.observations.write_observations(gpus=[(10.0, g), (20.0, later)])
    assert store.observations.latest_gpus(0.0) == [(20.0, later)]
    assert store.observations.gpu_series("GPU-1", 0.0, 20.0) == [(10.0, g), (20.0, later)]
    assert store.observations.latest_gpus(20.0) == []


def test_maintain_expires_observations(tmp_path: object) -> None:
    s = Stores.open(f"sqlite:///{tmp_path}/o.db", Retention(raw_seconds=60, rollup_seconds=600, rollup_step=60))
    s.migrate()
    s.observations.write_observations(probes=[probe(100.0, 0.1)], gpus=[(100.0, GpuSample("h", "0", "G"))],
                         certs=[CertResult("a:443", 100.0, True)])
    s.maintain(now=650.0)
    assert s.observations.probe_results_between(0, 1e9) and s.observations.latest_gpus(0)
    s.maintain(now=701.0)
    assert s.observations.probe_results_between(0, 1e9) == [] and s.observations.latest_gpus(0) == [] and s.observations.certificate_results() == []
    s.close()


def test_probe_summary_is_exact_and_goodput_needs_every_target() -> None:
    ttfts = [0.1, 0.2, 0.3, 0.4, 1.5]
    rs = [probe(float(i), t) for i, t in enumerate(ttfts)]
    rs.append(probe(9.0, 0.2, itl=(0.5, 0.5)))  # fast first token, slow stream: not good
    rs.append(probe(10.0, None, ok=False, error_kind="timeout", error="timeout after 5s", itl=()))
    summary = probe_summary(rs, ttft_target=1.0, itl_target=0.1)
    assert summary is not None
    s = summary.to_json()  # as /api/v1/backends shows it
    assert s["count"] == 7
    assert s["success_ratio"] == pytest.approx(6 / 7)
    assert s["goodput_ratio"] == pytest.approx(4 / 7)  # 0.1..0.4 only
    assert s["ttft"]["p50"] == pytest.approx(exact_quantile([0.1, 0.2, 0.2, 0.3, 0.4, 1.5], 0.5)) == pytest.approx(0.25)
    assert s["last_error"] == {"ts": 10.0, "kind": "timeout", "error": "timeout after 5s", "status": None}
    assert probe_summary([], 1.0, 0.1) is None


def test_certificate_view_days_left() -> None:
    v = certificate_view(CertResult("a:443", 0.0, True, not_after=5 * 86400.0, chain_not_after=2 * 86400.0), now=0.0)
    assert v["days_left"] == 5.0 and v["chain_days_left"] == 2.0
    assert math.isclose(exact_quantile([1.0, 2.0, 3.0, 4.0], 0.99) or 0, 3.97)


def test_a_backends_gpus_are_those_of_its_host(store: Stores) -> None:
    from collector.query import gpu_host_of, summaries
    from inferwatch.config import parse

    cfg = parse({"storage": "sqlite://", "backends": [
        {"name": "remote", "engine": "vllm", "url": "http://node-7:8000"},
        {"name": "local", "engine": "vllm", "url": "http://127.0.0.1:8000"},
        {"name": "pinned", "engine": "vllm", "url": "http://10.0.0.5:8000", "gpu_host": "node-7"},
        {"name": "bare", "engine": "vllm", "url": "http://10.0.0.6:8000"},
    ]})
    assert [gpu_host_of(b, "this-box") for b in cfg.backends] == ["node-7", "this-box", "node-7", "10.0.0.6"]
    gib = 2**30
    store.observations.write_observations(gpus=[
        (100.0, GpuSample("node-7", "0", "G0", memory_used_bytes=20 * gib, memory_total_bytes=80 * gib)),
        (100.0, GpuSample("node-7", "1", "G1", memory_used_bytes=60 * gib, memory_total_bytes=80 * gib)),
        (100.0, GpuSample("node-7", "2", "G2")),  # no memory reading: not a 0
        (100.0, GpuSample("this-box", "0", "G3", memory_used_bytes=8 * gib, memory_total_bytes=32 * gib)),
        (10.0, GpuSample("10.0.0.6", "0", "G4", memory_used_bytes=gib, memory_total_bytes=2 * gib)),  # too old
    ])
    got = {s.name: s.gpu_memory_used_ratio for s in summaries(store.reads, cfg.backends, 120.0, 60.0, "this-box")}
    assert got == {"remote": 0.75, "local": 0.25, "pinned": 0.75, "bare": None}
