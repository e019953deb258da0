"""dcgm-exporter and Triton GPU expositions → GpuSample (units, MIG, failed reads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.samples import GpuSample
from exporters.gpu_scrape import WANTED_DCGM, WANTED_TRITON, from_dcgm, from_triton
from exporters.parser import parse

FIXTURES = Path(__file__).resolve().parents[1] / "testdata" / "expositions"
MiB = 1 << 20


def _read(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- dcgm-exporter -------------------------------------------------------------------------------
def test_dcgm_two_h100s_exact_units() -> None:
    fams = parse(_read("dcgm-4.5.3-h100x2.txt"), keep=WANTED_DCGM)
    assert set(fams) == WANTED_DCGM - {"DCGM_FI_DEV_FB_TOTAL"}
    gpus = from_dcgm(fams, host="10.0.0.7")
    assert gpus == [
        GpuSample(
            host="gpu-node-7", index="0", uuid="GPU-5c8a3f0e-9b1d-4e27-8a66-1f0d2c3b4a59",
            name="NVIDIA H100 80GB HBM3",
            memory_used_bytes=77399 * MiB, memory_free_bytes=3641 * MiB,
            memory_total_bytes=81559 * MiB,  # used + free + reserved (519 MiB), as nvidia-smi
            utilization_ratio=0.97, temperature_celsius=51.0, power_watts=412.817, source="dcgm",
            sm_clock_hertz=1980e6, tensor_active_ratio=0.412876, last_xid=0,  # MHz → Hz; XID 0: none
        ),
        GpuSample(
            host="gpu-node-7", index="1", uuid="GPU-e2d41b77-03c9-4f5a-9d18-7b6a5c4e3f21",
            name="NVIDIA H100 80GB HBM3",
            memory_used_bytes=507 * MiB, memory_free_bytes=80533 * MiB,
            memory_total_bytes=81559 * MiB, utilization_ratio=0.0, temperature_celsius=38.0,
            power_watts=118.052, source="dcgm", sm_clock_hertz=1755e6, tensor_active_ratio=0.0, last_xid=0,
        ),
    ]
    assert gpus[0].memory_used_bytes == 81158733824 and gpus[0].memory_total_bytes == 85520809984


def test_dcgm_whole_body_without_keep_gives_the_same() -> None:
    body = _read("dcgm-4.5.3-h100x2.txt")
    assert from_dcgm(parse(body), "h") == from_dcgm(parse(body, keep=WANTED_DCGM), "h")


def test_dcgm_mig_instances() -> None:
    gpus = from_dcgm(parse(_read("dcgm-4.5.3-a100-mig.txt"), keep=WANTED_DCGM), host="ignored")
    parent = "GPU-a810a1fc-9f46-0e6f-5cef-bf34c2248e12"
    assert [(g.host, g.index, g.uuid, g.name) for g in gpus] == [
        ("gpu-node-3", "0/1", parent, "NVIDIA A100-SXM4-40GB MIG 3g.20gb"),
        ("gpu-node-3", "0/9", parent, "NVIDIA A100-SXM4-40GB MIG 1g.5gb"),
        ("gpu-node-3", "1", "GPU-604c7a18-e7d0-02e0-723a-7578be840651", "NVIDIA A100-SXM4-40GB"),
    ]
    gi1, gi9, whole = gpus
    assert (gi1.memory_used_bytes, gi1.memory_free_bytes, gi1.memory_total_bytes) == (
        14522 * MiB, 5446 * MiB, 19968 * MiB)
    assert (gi9.memory_used_bytes, gi9.memory_total_bytes) == (13 * MiB, 4864 * MiB)
    assert gi1.utilization_ratio is None and gi9.utilization_ratio is None  # GPU_UTIL: not on MIG
    assert gi1.temperature_celsius == 47.0 and gi1.power_watts == 187.442
    assert whole.memory_total_bytes == 40960 * MiB and whole.utilization_ratio == 0.0
    assert whole.temperature_celsius == 31.0 and whole.power_watts == 56.31
    assert all(g.source == "dcgm" and g.errors == () for g in gpus)


DCGM_MINIMAL = """\
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="10",uuid="GPU-b",device="nvidia10",modelName="Tesla T4"} 100
DCGM_FI_DEV_FB_USED{gpu="2",uuid="GPU-a",device="nvidia2",modelName="Tesla T4"} 200
DCGM_FI_DEV_FB_USED{gpu="2",uuid="GPU-a",device="nvidia2",modelName="Tesla T4",pod="other"} 200
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="10",uuid="GPU-b",device="nvidia10",modelName="Tesla T4"} 15000
# HELP DCGM_FI_DEV_FB_TOTAL Framebuffer memory total (in MiB).
# TYPE DCGM_FI_DEV_FB_TOTAL gauge
DCGM_FI_DEV_FB_TOTAL{gpu="2",uuid="GPU-a",device="nvidia2",modelName="Tesla T4"} 15360
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="2",uuid="GPU-a",device="nvidia2",modelName="Tesla T4"} NaN
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{nvswitch="0"} 40
"""


def test_dcgm_old_namespace_no_hostname_total_and_missing_fields() -> None:
    gpus = from_dcgm(parse(DCGM_MINIMAL, keep=WANTED_DCGM), host="node-9")
    assert [(g.host, g.index, g.uuid) for g in gpus] == [("node-9", "2", "GPU-a"), ("node-9", "10", "GPU-b")]
    a, b = gpus
    # FB_TOTAL wins where exported; no FB_FREE: free unknown
    assert (a.memory_used_bytes, a.memory_free_bytes, a.memory_total_bytes) == (200 * MiB, None, 15360 * MiB)
    assert a.power_watts is None  # NaN is no value
    # no FB_RESERVED exported: total = used + free
    assert (b.memory_used_bytes, b.memory_total_bytes) == (100 * MiB, 15100 * MiB)
    assert b.utilization_ratio is None and b.temperature_celsius is None and b.power_watts is None


def test_dcgm_empty() -> None:
    assert from_dcgm({}, "h") == []
    assert from_dcgm(parse("", keep=WANTED_DCGM), "h") == []


# -- Triton --------------------------------------------------------------------------------------
def test_triton_gpu_metrics() -> None:
    fams = parse(_read("triton-gpu-2xl40s.txt"), keep=WANTED_TRITON)
    assert set(fams) == WANTED_TRITON
    ok, failed = from_triton(fams, host="triton-0")
    assert ok == GpuSample(
        host="triton-0", index="", uuid="GPU-7d3e9a41-2c5b-4f08-b6e1-93a0c4d58f27", name=None,
        memory_used_bytes=41872 * MiB, memory_free_bytes=(46068 - 41872) * MiB,
        memory_total_bytes=46068 * MiB, utilization_ratio=83 * 0.01, power_watts=287.411,
        source="triton",
    )
    assert ok.memory_total_bytes == 48305799168 and ok.utilization_ratio == pytest.approx(0.83)
    # Triton writes 0 when its DCGM read fails: no numbers, two notes; idle utilisation kept
    assert failed.uuid == "GPU-c19f0b62-8e4d-4a73-a5f2-0d6b7e8c9a14"
    assert (failed.memory_used_bytes, failed.memory_free_bytes, failed.memory_total_bytes) == (None, None, None)
    assert failed.power_watts is None and failed.utilization_ratio == 0.0
    assert failed.errors == ("memory: Triton reported 0 bytes total (its DCGM read failed)",
                             "power: Triton reported 0 W (its DCGM read failed)")


def test_triton_cpu_only_server_has_no_gpus() -> None:
    body = _read("triton-trtllm-ensemble.txt")
    assert from_triton(parse(body, keep=WANTED_TRITON), "h") == []
    assert from_triton(parse(body), "h") == []


def test_triton_partial_families() -> None:
    body = (
        "# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes\n"
        "# TYPE nv_gpu_memory_used_bytes gauge\n"
        'nv_gpu_memory_used_bytes{gpu_uuid="GPU-x"} 1073741824\n'
    )
    (g,) = from_triton(parse(body), "h")
    assert (g.memory_used_bytes, g.memory_total_bytes, g.memory_free_bytes) == (1 << 30, None, None)
    assert g.utilization_ratio is None and g.power_watts is None and g.errors == ()


def test_fixtures_follow_the_exporters_label_order() -> None:
    """Hand-written fixtures keep the real renderers' label order (parser keeps dict order)."""
    h100 = parse(_read("dcgm-4.5.3-h100x2.txt"))["DCGM_FI_DEV_XID_ERRORS"].samples[0]
    assert list(h100.labels) == ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname",
                                 "DCGM_FI_DRIVER_VERSION", "err_code", "err_msg"]
    mig = parse(_read("dcgm-4.5.3-a100-mig.txt"))["DCGM_FI_DEV_FB_USED"].samples[0]
    assert list(mig.labels) == ["gpu", "UUID", "pci_bus_id", "device", "modelName", "GPU_I_PROFILE",
                                "GPU_I_ID", "Hostname", "DCGM_FI_DRIVER_VERSION", "container",
                                "namespace", "pod"]
    assert parse(_read("dcgm-4.5.3-h100x2.txt"))["DCGM_FI_DEV_POWER_USAGE"].samples[0].value == 412.817
