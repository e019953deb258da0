"""NvmlReader against a fake pynvml (tests/fake_nvml.py): numbers, fallbacks, MIG, failures."""

from __future__ import annotations

import inspect
import logging
import string
import sys
import types
from typing import Any

import pytest

from core.samples import GpuProcess
from exporters.nvml import NvmlReader, NvmlStatus
from tests import fake_nvml as fk
from tests.fake_nvml import FakeGpu, FakeMig, FakeNvml, GiB, MiB

H100 = "GPU-6f2b1e0c-8a9d-4c7e-b1a2-3d4e5f607182"
A100 = "GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def _reader(fake: FakeNvml) -> NvmlReader:
    r = NvmlReader(nvml=fake, host="node-1")
    status = r.start()
    assert status.enabled, status
    return r


def _two_gpus(**kw: Any) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(H100, processes=[(4242, 3 * GiB), (4243, None), (4244, -1)]),
            FakeGpu(A100, name="NVIDIA A100-SXM4-40GB", total=40960 * MiB, reserved=0,
                    used=1 * GiB, util_pct=100, temp_c=63, power_mw=312500),
        ],
        process_names={4242: "python3"},
        **kw,
    )


# -- the fake matches pynvml ---------------------------------------------------------------------
def test_fake_error_codes_and_names_match_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    for name, value in vars(fk).items():
        if name.startswith("NVML_ERROR_") or name in ("NVML_TEMPERATURE_GPU", "NVML_CLOCK_SM", "NVML_DEVICE_MIG_ENABLE",
                                                      "nvmlMemory_v2", "NVML_SUCCESS"):
            assert getattr(pynvml, name) == value, name
    for name, cls in fk.ERROR_CLASSES.items():
        real = getattr(pynvml, name)
        assert issubclass(real, pynvml.NVMLError)
        assert cls(0).value == real(0).value  # each subclass carries its own code
    # NVMLError(code) maps to the subclass, as pynvml's __new__ does
    assert type(fk.NVMLError(fk.NVML_ERROR_GPU_IS_LOST)).__name__ == "NVMLError_GpuIsLost"
    assert str(fk.NVMLError(fk.NVML_ERROR_NOT_SUPPORTED)) == str(pynvml.NVMLError(3)) == "Not Supported"
    assert str(fk.NVMLError(fk.NVML_ERROR_GPU_IS_LOST)) == str(pynvml.NVMLError(15)) == "GPU is lost"


def test_fake_functions_have_pynvml_signatures() -> None:
    pynvml = pytest.importorskip("pynvml")
    for name, fn in inspect.getmembers(FakeNvml, inspect.isfunction):
        if not name.startswith("nvml"):
            continue
        real = inspect.signature(getattr(pynvml, name))
        ours = inspect.signature(fn)
        assert list(ours.parameters)[1:] == list(real.parameters), name
    # pynvml's memory struct fields, v1 and v2
    assert [f for f, _ in pynvml.c_nvmlMemory_v2_t._fields_] == ["version", "total", "reserved", "free", "used"]
    assert [f for f, _ in pynvml.c_nvmlMemory_t._fields_] == ["total", "free", "used"]


# -- values and units ----------------------------------------------------------------------------
def test_reads_every_gpu_with_exact_units() -> None:
    fake = _two_gpus()
    r = NvmlReader(nvml=fake, host="node-1")
    assert r.start() == NvmlStatus(enabled=True, reason=None, driver_version="550.54.15", device_count=2)
    gpus = r.read()
    assert [(g.index, g.uuid) for g in gpus] == [("0", H100), ("1", A100)]
    g0, g1 = gpus
    assert g0.host == "node-1" and g0.source == "nvml" and g0.errors == ()
    assert g0.name == "NVIDIA H100 80GB HBM3"
    # v2: 'used' excludes the 519 MiB reservation; total is the whole framebuffer
    assert g0.memory_used_bytes == 4 * GiB == 4294967296
    assert g0.memory_total_bytes == 81559 * MiB == 85520809984
    assert g0.memory_free_bytes == (81559 - 519 - 4096) * MiB
    assert g0.utilization_ratio == 0.37
    assert g0.temperature_celsius == 41.0
    assert g0.power_watts == 71.234
    assert g0.processes == (
        GpuProcess(pid=4242, name="python3", used_memory_bytes=3 * GiB),
        GpuProcess(pid=4243, name=None, used_memory_bytes=None),  # NVML_VALUE_NOT_AVAILABLE
        GpuProcess(pid=4244, name=None, used_memory_bytes=None),  # pynvml's None
    )
    assert g1.utilization_ratio == 1.0 and g1.temperature_celsius == 63.0 and g1.power_watts == 312.5
    assert g1.memory_used_bytes == GiB and g1.memory_total_bytes == 40 * GiB
    assert g1.processes == ()
    # the v2 call carried the v2 version constant
    assert ("nvmlDeviceGetMemoryInfo_v2", 0) in fake.calls
    assert ("nvmlDeviceGetMemoryInfo", 0) not in fake.calls


def test_host_defaults_to_hostname() -> None:
    import socket

    assert NvmlReader(nvml=_two_gpus()).host == socket.gethostname()


# -- memory v2 / v1 selection ---------------------------------------------------------------------
def test_old_driver_without_v2_falls_back_to_v1_and_stops_asking() -> None:
    fake = _two_gpus(memory_v2=False)
    r = _reader(fake)
    g0 = r.read()[0]
    # v1 'used' includes the driver's reserved memory
    assert g0.memory_used_bytes == 4 * GiB + 519 * MiB
    assert g0.memory_total_bytes == 81559 * MiB
    assert g0.memory_free_bytes == (81559 - 519 - 4096) * MiB
    assert g0.errors == ()
    v2_calls = [c for c in fake.calls if c[0] == "nvmlDeviceGetMemoryInfo_v2"]
    assert v2_calls == [("nvmlDeviceGetMemoryInfo_v2", 0)]  # GPU 1 and later reads go straight to v1
    r.read()
    assert [c for c in fake.calls if c[0] == "nvmlDeviceGetMemoryInfo_v2"] == v2_calls


def test_argument_version_mismatch_falls_back_to_v1() -> None:
    fake = _two_gpus(fail={("nvmlDeviceGetMemoryInfo_v2", None): fk.NVML_ERROR_ARGUMENT_VERSION_MISMATCH})
    g0 = _reader(fake).read()[0]
    assert g0.memory_used_bytes == 4 * GiB + 519 * MiB and g0.errors == ()


def test_v2_not_supported_on_one_gpu_uses_v1_there_only() -> None:
    fake = _two_gpus(fail={("nvmlDeviceGetMemoryInfo_v2", 0): fk.NVML_ERROR_NOT_SUPPORTED})
    r = _reader(fake)
    g0, g1 = r.read()
    assert g0.memory_used_bytes == 4 * GiB + 519 * MiB  # v1
    assert g1.memory_used_bytes == 1 * GiB  # still v2
    r.read()
    assert fake.calls.count(("nvmlDeviceGetMemoryInfo_v2", 1)) == 2


def test_memory_failing_in_both_versions_degrades_memory_only() -> None:
    fake = _two_gpus(fail={("nvmlDeviceGetMemoryInfo_v2", 0): fk.NVML_ERROR_NOT_SUPPORTED,
                           ("nvmlDeviceGetMemoryInfo", 0): fk.NVML_ERROR_NOT_SUPPORTED})
    g0 = _reader(fake).read()[0]
    assert (g0.memory_used_bytes, g0.memory_free_bytes, g0.memory_total_bytes) == (None, None, None)
    assert g0.errors == ("memory: Not Supported",)
    assert g0.power_watts == 71.234


def test_memory_v2_other_error_is_reported_not_retried_as_v1() -> None:
    fake = _two_gpus(fail={("nvmlDeviceGetMemoryInfo_v2", 1): fk.NVML_ERROR_GPU_IS_LOST})
    g1 = _reader(fake).read()[1]
    assert g1.memory_used_bytes is None and g1.errors == ("memory: GPU is lost",)


# -- degraded fields ------------------------------------------------------------------------------
def test_failing_calls_degrade_single_fields_with_notes() -> None:
    fake = _two_gpus(fail={
        ("nvmlDeviceGetPowerUsage", 1): fk.NVML_ERROR_NOT_SUPPORTED,
        ("nvmlDeviceGetTemperature", 1): fk.NVML_ERROR_GPU_IS_LOST,
        ("nvmlDeviceGetUtilizationRates", 0): fk.NVML_ERROR_TIMEOUT,
        ("nvmlDeviceGetComputeRunningProcesses", 0): fk.NVML_ERROR_NO_PERMISSION,
        ("nvmlDeviceGetName", 0): fk.NVML_ERROR_UNKNOWN,
    })
    g0, g1 = _reader(fake).read()
    assert g0.utilization_ratio is None and g0.name is None and g0.processes == ()
    assert g0.errors == ("name: Unknown Error", "utilization: Timeout",
                         "processes: Insufficient Permissions")
    assert g0.power_watts == 71.234 and g0.memory_used_bytes == 4 * GiB
    assert g1.power_watts is None and g1.temperature_celsius is None
    assert g1.errors == ("temperature: GPU is lost", "power: Not Supported")
    assert g1.utilization_ratio == 1.0 and g1.memory_total_bytes == 40 * GiB


def test_uuid_failure_keeps_the_gpu_with_an_empty_uuid() -> None:
    fake = _two_gpus(fail={("nvmlDeviceGetUUID", 0): fk.NVML_ERROR_UNKNOWN})
    g0 = _reader(fake).read()[0]
    assert g0.uuid == "" and g0.errors == ("uuid: Unknown Error",) and g0.memory_used_bytes == 4 * GiB


def test_lost_gpu_is_skipped_and_others_still_read(caplog: pytest.LogCaptureFixture) -> None:
    fake = _two_gpus(fail={("nvmlDeviceGetHandleByIndex", 0): fk.NVML_ERROR_GPU_IS_LOST})
    r = _reader(fake)
    with caplog.at_level(logging.WARNING, logger="exporters.nvml"):
        gpus = r.read()
        r.read()
    assert [g.uuid for g in gpus] == [A100]
    assert r.last_errors == ("gpu 0: skipped, no handle: GPU is lost",)
    assert len([rec for rec in caplog.records if rec.levelno == logging.WARNING]) == 1  # once, not per read
    del fake.fail[("nvmlDeviceGetHandleByIndex", 0)]
    assert [g.uuid for g in r.read()] == [H100, A100] and r.last_errors == ()


def test_processes_v2_fallback_and_unavailable_names() -> None:
    fake = _two_gpus(procs_v3=False, fail={("nvmlSystemGetProcessName", 4242): fk.NVML_ERROR_NO_PERMISSION})
    r = _reader(fake)
    g0 = r.read()[0]
    assert [(p.pid, p.name, p.used_memory_bytes) for p in g0.processes] == [
        (4242, None, 3 * GiB), (4243, None, None), (4244, None, None)]
    assert g0.errors == ()
    r.read()
    assert fake.calls.count(("nvmlDeviceGetComputeRunningProcesses", 0)) == 1  # v3 asked once


def test_any_exception_type_is_contained() -> None:
    class Broken(FakeNvml):
        def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
            raise RuntimeError("ctypes exploded")

        def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
            raise OSError("weird")

    fake = Broken([FakeGpu(H100)])
    g0 = _reader(fake).read()[0]
    assert g0.power_watts is None
    assert g0.errors == ("power: ctypes exploded", "mig: weird")


# -- MIG -----------------------------------------------------------------------------------------
def _mig_fake(**kw: Any) -> FakeNvml:
    gpu = FakeGpu(
        A100, name="NVIDIA A100-SXM4-40GB", total=40960 * MiB, reserved=0, used=0,
        mig_mode=fk.NVML_DEVICE_MIG_ENABLE,
        migs=[
            FakeMig(gi_id=1, uuid="MIG-11111111-2222-3333-4444-555555555555",
                    name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", total=19968 * MiB, used=12 * GiB,
                    processes=[(777, 12 * GiB)]),
            None,  # empty slot
            FakeMig(gi_id=9, uuid="MIG-66666666-7777-8888-9999-000000000000",
                    name="NVIDIA A100-SXM4-40GB MIG 1g.5gb", total=4864 * MiB, used=13 * MiB),
        ],
    )
    return FakeNvml([FakeGpu(H100, mig_mode=fk.NVML_DEVICE_MIG_DISABLE), gpu], **kw)


def test_mig_devices_are_read_and_indexed_by_gpu_instance_id() -> None:
    gpus = _reader(_mig_fake()).read()
    assert [(g.index, g.uuid) for g in gpus] == [
        ("0", H100),
        ("1", A100),
        ("1/1", "MIG-11111111-2222-3333-4444-555555555555"),
        ("1/9", "MIG-66666666-7777-8888-9999-000000000000"),
    ]
    parent, m1, m9 = gpus[1:]
    assert parent.errors == () and parent.temperature_celsius == 41.0
    assert m1.name == "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    assert m1.memory_used_bytes == 12 * GiB and m1.memory_total_bytes == 19968 * MiB
    assert m1.memory_free_bytes == (19968 - 12 * 1024) * MiB
    assert m1.processes == (GpuProcess(777, None, 12 * GiB),)
    assert m9.memory_used_bytes == 13 * MiB and m9.memory_total_bytes == 4864 * MiB
    # utilisation is not supported on MIG devices; temperature/power live on the parent
    assert m1.utilization_ratio is None and m1.errors == ("utilization: Not Supported",)
    assert m1.temperature_celsius is None and m1.power_watts is None
    assert all(g.host == "node-1" and g.source == "nvml" for g in gpus)


def test_mig_failures_degrade_the_mig_device_or_note_on_the_parent() -> None:
    fake = _mig_fake(fail={
        ("nvmlDeviceGetGpuInstanceId", (1, 2)): fk.NVML_ERROR_NOT_SUPPORTED,
        ("nvmlDeviceGetMigDeviceHandleByIndex", (1, 0)): fk.NVML_ERROR_GPU_IS_LOST,
    })
    gpus = _reader(fake).read()
    assert [g.index for g in gpus] == ["0", "1", "1/2"]  # slot number stands in for the GI id
    assert gpus[1].errors == ("mig 0: GPU is lost",)
    assert gpus[2].errors[0] == "gpu instance id: Not Supported (index uses MIG slot 2)"


def test_mig_mode_query_error_is_noted_but_not_supported_is_quiet() -> None:
    fake = _mig_fake(fail={("nvmlDeviceGetMigMode", 1): fk.NVML_ERROR_UNKNOWN})
    gpus = _reader(fake).read()
    assert [g.index for g in gpus] == ["0", "1"]
    assert gpus[1].errors == ("mig: Unknown Error",)
    plain = _reader(FakeNvml([FakeGpu(H100)])).read()  # mig_mode None: NotSupported
    assert plain[0].errors == ()


# -- disabled ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "why", "level"),
    [(fk.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found", logging.DEBUG),  # no driver: no GPU here
     (fk.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded", logging.INFO),
     (fk.NVML_ERROR_NO_PERMISSION, "Insufficient Permissions", logging.INFO)],
)
def test_init_failure_disables_with_reason_and_one_line(
    code: int, why: str, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    r = NvmlReader(nvml=FakeNvml([FakeGpu(H100)], init_error=code), host="h")
    with caplog.at_level(logging.DEBUG, logger="exporters.nvml"):
        status = r.start()
        assert r.start() is status  # cached, not logged twice
    assert status == NvmlStatus(enabled=False, reason=f"NVML not available: {why}",
                                driver_version=None, device_count=0)
    assert [(rec.levelno, rec.getMessage()) for rec in caplog.records] == [
        (level, f"GPU metrics off: NVML not available: {why}")]
    assert r.read() == []
    r.close()  # nothing to shut down; no exception


def test_device_count_failure_disables_and_shuts_down() -> None:
    fake = FakeNvml([FakeGpu(H100)], fail={("nvmlDeviceGetCount", None): fk.NVML_ERROR_UNKNOWN})
    r = NvmlReader(nvml=fake, host="h")
    status = r.start()
    assert status == NvmlStatus(False, "NVML not available: cannot count GPUs (Unknown Error)", "550.54.15", 0)
    assert fake.initialised == 0 and r.read() == []


def test_driver_version_failure_is_not_fatal() -> None:
    fake = FakeNvml([FakeGpu(H100)], fail={("nvmlSystemGetDriverVersion", None): fk.NVML_ERROR_UNKNOWN})
    status = NvmlReader(nvml=fake, host="h").start()
    assert status == NvmlStatus(True, None, None, 1)


def test_missing_pynvml_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    status = NvmlReader(host="h").start()
    assert not status.enabled
    assert status.reason is not None and status.reason.startswith("NVML not available: cannot import pynvml")


def test_real_pynvml_without_a_driver_disables_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """On this machine (no NVIDIA driver) the real pynvml answers LibraryNotFound."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - a machine with a driver
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present")
    r = NvmlReader(host="h")
    status = r.start()
    assert not status.enabled and status.reason is not None
    assert status.reason.startswith("NVML not available: ")
    assert r.read() == []
    r.close()


def test_init_raising_oserror_is_contained() -> None:
    mod = types.SimpleNamespace(nvmlInit=lambda: (_ for _ in ()).throw(OSError("libnvidia-ml.so.1: cannot open")))
    status = NvmlReader(nvml=mod, host="h").start()
    assert status == NvmlStatus(False, "NVML not available: libnvidia-ml.so.1: cannot open")


def test_close_is_idempotent_and_read_after_close_is_empty() -> None:
    fake = _two_gpus()
    r = _reader(fake)
    r.close()
    r.close()
    assert fake.initialised == 0
    assert r.read() == []
    fake2 = _two_gpus(fail={("nvmlShutdown", None): fk.NVML_ERROR_UNKNOWN})
    r2 = _reader(fake2)
    r2.close()  # a failing shutdown is swallowed


def test_error_names_follow_pynvml_capwords() -> None:
    assert "NVMLError_GpuIsLost" in fk.ERROR_CLASSES
    assert "NVMLError_FunctionNotFound" in fk.ERROR_CLASSES
    assert "NVMLError_ArgumentVersionMismatch" in fk.ERROR_CLASSES
    assert string.capwords("LIBRARY_NOT_FOUND", "_").replace("_", "") == "LibraryNotFound"
