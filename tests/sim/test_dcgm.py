"""The simulated dcgm-exporter (sim/engines/dcgm.py): its body is what the real exporter prints,
inferwatch's dcgm reader gets exactly the simulator's truth out of it, and the demo serves it as
a GPU node (``gpus.dcgm``), never as a backend nor an incident target."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.samples import GpuSample
from exporters.gpu_scrape import WANTED_DCGM, from_dcgm
from exporters.parser import parse
from inferwatch.config import parse as parse_config
from sim.engines import dcgm
from sim.fleet import (
    DEMO,
    GPU_NODE,
    IncidentScript,
    build,
    demo_config,
    demo_tls,
    gpu_node_backend,
    uniform,
)
from sim.server import SimFleet

MiB = 1 << 20
T0 = 1_750_000_000.0  # the node (re)starts here
TIMES = [T0 + 1, T0 + 150.5, T0 + 299.25, T0 + 437.9, T0 + 3600, T0 + 86_400 + 0.999]
FIXTURE = Path(__file__).resolve().parents[1] / "testdata" / "expositions" / "dcgm-4.5.3-h100x2.txt"


def _expected(seed: int, now: float) -> list[GpuSample]:
    """The simulator's truth in the units ``from_dcgm`` gives (bytes, 0..1, °C, W)."""
    return [GpuSample(host=GPU_NODE, index=str(r.gpu.index), uuid=r.uuid, name="NVIDIA H100 80GB HBM3",
                      memory_used_bytes=r.fb_used_mib * MiB, memory_free_bytes=r.fb_free_mib * MiB,
                      memory_total_bytes=81559 * MiB, utilization_ratio=r.util_percent / 100,
                      temperature_celsius=float(r.gpu_temp_c), power_watts=r.power_mw / 1000, source="dcgm",
                      sm_clock_hertz=r.sm_clock_mhz * 1e6, tensor_active_ratio=r.tensor_active, last_xid=0)
            for r in dcgm.readings(seed, now, T0)]


@pytest.mark.parametrize("now", TIMES)
def test_the_dcgm_reader_gets_the_simulators_truth(now: float) -> None:
    node = gpu_node_backend(now=T0)
    body = node.render(now)
    fams = parse(body, keep=WANTED_DCGM)
    assert set(fams) == WANTED_DCGM - {"DCGM_FI_DEV_FB_TOTAL"}  # FB_TOTAL is not in the default CSV
    got = from_dcgm(fams, host="the-url-host")  # the Hostname label wins over the URL's host
    assert got == _expected(0, now)
    for g in got:  # nvidia-smi's memory.total: used + free + the driver's reservation
        assert g.memory_used_bytes is not None and g.memory_free_bytes is not None
        assert g.memory_total_bytes == g.memory_used_bytes + g.memory_free_bytes + 519 * MiB
    # the same instant gives the same body; the whole body gives the same samples as ``keep``
    assert gpu_node_backend(now=T0).render(now) == body
    assert from_dcgm(parse(body), "h") == got


def test_the_body_is_printed_as_dcgm_exporter_prints_it() -> None:
    body = gpu_node_backend(now=T0).render(T0 + 42.5).decode()
    assert body.endswith("\n") and "\n\n" not in body
    label_re = re.compile(
        r'^(DCGM_FI_\w+)\{gpu="(\d)",UUID="(GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",'
        r'pci_bus_id="([0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.\d)",device="nvidia\2",'
        r'modelName="NVIDIA H100 80GB HBM3",Hostname="sim-gpu-node",DCGM_FI_DRIVER_VERSION="570\.133\.20"'
        r'(,err_code="0",err_msg="No Error")?\} (\S+)$')
    declared: dict[str, str] = {}
    values: dict[tuple[str, str], str] = {}
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert lines[i + 1].startswith(f"# TYPE {name} "), line
            declared[name] = lines[i + 1].split()[3]
        elif not line.startswith("#"):
            m = label_re.match(line)
            assert m, line
            assert m.group(1) in declared, f"{m.group(1)}: sample before its HELP/TYPE"
            assert (m.group(5) is not None) == (m.group(1) == "DCGM_FI_DEV_XID_ERRORS"), line
            values[(m.group(1), m.group(2))] = m.group(6)
    # the families and their order of etc/default-counters.csv, as in the recorded real exposition
    recorded = [ln.split()[2] for ln in FIXTURE.read_text().splitlines() if ln.startswith("# HELP ")]
    assert list(declared) == [n for n in recorded if n in declared]
    assert declared == {
        n: ln.split()[3] for ln in FIXTURE.read_text().splitlines() if ln.startswith("# TYPE ")
        for n in [ln.split()[2]] if n in declared}
    assert {"DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED", "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE"} <= set(declared)
    # integer fields with %d, doubles with %f (six decimals)
    for gpu in ("0", "1"):
        for name in ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED",
                     "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"):
            assert re.fullmatch(r"\d+", values[(name, gpu)]), (name, values[(name, gpu)])
        assert re.fullmatch(r"\d+\.\d{6}", values[("DCGM_FI_DEV_POWER_USAGE", gpu)])
        assert values[("DCGM_FI_DEV_FB_RESERVED", gpu)] == "519"


def test_prometheus_client_parses_it_to_the_same_values() -> None:
    now = T0 + 1234.5
    body = gpu_node_backend(now=T0).render(now).decode()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    ours = parse(body)
    assert set(fams) == set(ours)
    for name, fam in fams.items():
        assert fam.type in ("gauge", "counter"), name
        theirs = sorted((tuple(sorted(s.labels.items())), s.value) for s in fam.samples)
        mine = sorted((tuple(sorted(s.labels.items())), s.value) for s in ours[name].samples)
        assert theirs == mine, name
    [r0, r1] = dcgm.readings(0, now, T0)
    used = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_FB_USED"].samples}
    assert used == {"0": r0.fb_used_mib, "1": r1.fb_used_mib}
    power = {s.labels["UUID"]: s.value for s in fams["DCGM_FI_DEV_POWER_USAGE"].samples}
    assert power == {r0.uuid: r0.power_mw / 1000, r1.uuid: r1.power_mw / 1000}


def test_values_are_plausible_and_memory_moves_with_load() -> None:
    per_gpu: dict[int, list[dcgm.GpuReading]] = {0: [], 1: []}
    for k in range(0, 1200, 7):  # two load cycles
        for r in dcgm.readings(3, T0 + k + 0.5, T0):
            per_gpu[r.gpu.index].append(r)
    for rs in per_gpu.values():
        for r in rs:
            assert r.total_mib == 81559
            assert 0 <= r.util_percent <= 100
            assert 30 <= r.gpu_temp_c <= 80
            assert 70.0 <= r.power_w <= 700.0
            assert r.fb_free_mib > 0 and r.fb_used_mib / r.total_mib < 0.94  # below GPUMemoryHigh's 98 %
        by_load = sorted(rs, key=lambda r: r.load)
        used = [r.fb_used_mib for r in by_load]
        assert used == sorted(used)  # more load, more memory
        assert used[-1] - used[0] > 500
        assert max(r.util_percent for r in rs) - min(r.util_percent for r in rs) > 30
    # the busy GPU is busier; different seeds give different GPUs
    assert max(r.util_percent for r in per_gpu[0]) > max(r.util_percent for r in per_gpu[1])
    assert {r.uuid for r in dcgm.readings(3, T0, T0)}.isdisjoint({r.uuid for r in dcgm.readings(4, T0, T0)})
    # the energy counter only grows, and starts again from zero after a restart
    node = gpu_node_backend(now=T0)
    energy = [dcgm.readings(0, T0 + k, node.started_at)[0].energy_mj for k in (0, 10, 20, 3600)]
    assert energy == sorted(energy) and energy[0] == 0 < energy[1]


async def test_the_demo_serves_the_gpu_node_under_gpus_dcgm(tmp_path: Path) -> None:
    now = T0 + 500.25
    contexts, ca_file = demo_tls(tmp_path)
    backends = build(now=T0)
    assert [b.name for b in backends] == [s.name for s in DEMO] + [GPU_NODE]
    fleet = SimFleet(backends, clock=lambda: now, ssl=contexts)
    await fleet.start()
    try:
        data = demo_config(fleet, storage=f"sqlite:///{tmp_path / 'iw.db'}", listen="127.0.0.1:0",
                           interval="5s", ca_file=ca_file)
        cfg = parse_config(data, "<demo>")
        assert [b.name for b in cfg.backends] == [s.name for s in DEMO]  # not a backend
        assert cfg.gpus.nvml == "auto"
        [target] = cfg.gpus.dcgm
        assert target.url == f"http://127.0.0.1:{fleet.ports[GPU_NODE]}/metrics" and target.host == GPU_NODE
        async with httpx.AsyncClient() as client:
            resp = await client.get(target.url)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/plain; charset=utf-8"
        assert from_dcgm(parse(resp.content, keep=WANTED_DCGM), target.host) == _expected(0, now)
        # the incident script breaks inference backends only
        script = IncidentScript(fleet)
        assert script.steps and GPU_NODE not in {name for name, _ in script.steps}
    finally:
        await fleet.stop()
    # a fleet without the GPU node: NVML only, as before
    plain = SimFleet(build(now=T0, gpu_node=False))
    assert GPU_NODE not in plain.backends
    plain.ports = dict.fromkeys(plain.backends, 1)
    assert demo_config(plain, storage="sqlite:///x.db", listen="127.0.0.1:0", interval="5s",
                       ca_file=ca_file)["gpus"] == {"nvml": "auto"}


async def test_the_incident_script_never_picks_the_gpu_node() -> None:
    [engine] = uniform(1, now=T0)
    fleet = SimFleet([gpu_node_backend(now=T0), engine])  # the GPU node first: not the fallback
    script = IncidentScript(fleet, period=0.01, clock=lambda: T0 + 1)
    assert {name for name, _ in script.steps} == {engine.name}
    alone = IncidentScript(SimFleet([gpu_node_backend(now=T0)]), period=0.01)
    assert alone.steps == []
    await alone.run()  # nothing to break: returns at once
