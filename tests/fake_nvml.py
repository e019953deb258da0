"""A fake ``pynvml``: the same function names, error classes and codes, return shapes.

Configure it with :class:`FakeGpu` / :class:`FakeMig` values and failures, then pass it as
``NvmlReader(nvml=FakeNvml(...))``. Error classes are built like pynvml's
``_extractNVMLErrorsAsClasses``: ``NVMLError(code)`` returns the subclass for ``code``
(``NVMLError_NotSupported``, ``NVMLError_GPUIsLost``, …) and ``str()`` is pynvml's text.

Failures: ``fail={("nvmlDeviceGetPowerUsage", 1): NVML_ERROR_NOT_SUPPORTED}`` makes that
function fail for GPU 1 (``None`` instead of an index: every GPU; a MIG device is addressed as
``(gpu, slot)``). ``init_error`` makes ``nvmlInit`` fail (``NVML_ERROR_LIBRARY_NOT_FOUND``…);
``memory_v2=False`` makes ``nvmlDeviceGetMemoryInfo(..., version=...)`` answer
``FunctionNotFound`` (a pre-R510 driver); ``procs_v3=False`` the same for
``nvmlDeviceGetComputeRunningProcesses``. ``calls`` records ``(function, key)`` for assertions.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20
GiB = 1 << 30

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_UNKNOWN = 999

# pynvml's NVMLError._errcode_to_string
_TEXT = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH: "Argument Version Mismatch",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
nvmlMemory_v2 = 0x02000028
NVML_VALUE_NOT_AVAILABLE = 2**64 - 1


class NVMLError(Exception):
    """pynvml's base class: ``NVMLError(code)`` is an instance of the code's subclass."""

    _valClassMapping: dict[int, type[NVMLError]] = {}
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int | None = None) -> None:
        super().__init__()

    def __str__(self) -> str:
        return _TEXT.get(self.value, f"NVML Error with code {self.value}")


def _make_error_classes() -> dict[str, type[NVMLError]]:
    made: dict[str, type[NVMLError]] = {}
    for const, code in list(globals().items()):
        if not const.startswith("NVML_ERROR_"):
            continue
        # as pynvml: NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost
        name = "NVMLError_" + string.capwords(const.replace("NVML_ERROR_", ""), "_").replace("_", "")

        def new(cls: type[NVMLError], *args: Any, _code: int = code) -> NVMLError:
            return NVMLError.__new__(cls, _code)

        cls = type(name, (NVMLError,), {"__new__": new})
        NVMLError._valClassMapping[code] = cls
        made[name] = cls
    return made


ERROR_CLASSES = _make_error_classes()
globals().update(ERROR_CLASSES)


@dataclass
class c_nvmlMemory_t:
    total: int
    free: int
    used: int


@dataclass
class c_nvmlMemory_v2_t:
    version: int
    total: int
    reserved: int
    free: int
    used: int


@dataclass
class c_nvmlUtilization_t:
    gpu: int
    memory: int


@dataclass
class ProcessInfo:
    """``nvmlFriendlyObject`` of ``c_nvmlProcessInfo_v2_t`` (``usedGpuMemory`` may be None)."""

    pid: int
    usedGpuMemory: int | None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class FakeMig:
    gi_id: int
    uuid: str
    name: str
    total: int
    used: int
    reserved: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 81559 * MiB
    reserved: int = 519 * MiB
    used: int = 4 * GiB
    util_pct: int = 37
    temp_c: int = 41
    power_mw: int = 71234
    sm_clock_mhz: int = 1980
    #: (pid, used bytes); used None: NVML_VALUE_NOT_AVAILABLE as the C struct holds it, -1: the
    #: None pynvml puts in its place
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    mig_mode: int | None = None  # None: MIG not supported (NotSupported)
    migs: list[FakeMig | None] = field(default_factory=list)  # slot → device (None: empty slot)


@dataclass(frozen=True)
class Handle:
    gpu: int
    slot: int | None = None

    @property
    def key(self) -> int | tuple[int, int]:
        return self.gpu if self.slot is None else (self.gpu, self.slot)


class FakeNvml:
    """A stand-in for the ``pynvml`` module (see the module docstring)."""

    # constants and classes, reachable as attributes like pynvml's module globals
    NVMLError = NVMLError
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    nvmlMemory_v2 = nvmlMemory_v2

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        driver_version: str = "550.54.15",
        init_error: int | None = None,
        memory_v2: bool = True,
        procs_v3: bool = True,
        fail: dict[tuple[str, Any], int] | None = None,
        process_names: dict[int, str] | None = None,
    ) -> None:
        self.gpus = gpus
        self.driver_version = driver_version
        self.init_error = init_error
        self.memory_v2 = memory_v2
        self.procs_v3 = procs_v3
        self.fail = dict(fail or {})
        self.process_names = dict(process_names or {})
        self.initialised = 0
        self.calls: list[tuple[str, Any]] = []
        for name, cls in ERROR_CLASSES.items():
            setattr(self, name, cls)

    # -- helpers --------------------------------------------------------------------------------
    def _enter(self, fn: str, key: Any = None) -> None:
        self.calls.append((fn, key))
        if fn != "nvmlInit" and not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        for k in (key, None):
            code = self.fail.get((fn, k))
            if code is not None:
                raise NVMLError(code)

    def _dev(self, h: Handle) -> FakeGpu | FakeMig:
        gpu = self.gpus[h.gpu]
        if h.slot is None:
            return gpu
        mig = gpu.migs[h.slot]
        assert mig is not None
        return mig

    # -- system ---------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._enter("nvmlSystemGetProcessName", pid)
        if pid not in self.process_names:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return self.process_names[pid]

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    # -- device ---------------------------------------------------------------------------------
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._enter("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return Handle(index)

    def nvmlDeviceGetUUID(self, handle: Handle) -> str:
        self._enter("nvmlDeviceGetUUID", handle.key)
        return self._dev(handle).uuid

    def nvmlDeviceGetName(self, handle: Handle) -> str:
        self._enter("nvmlDeviceGetName", handle.key)
        return self._dev(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: Handle, version: int | None = None) -> Any:
        d = self._dev(handle)
        free = d.total - d.reserved - d.used
        if not version:
            self._enter("nvmlDeviceGetMemoryInfo", handle.key)
            # v1: 'used' includes the driver's reservation
            return c_nvmlMemory_t(total=d.total, free=free, used=d.used + d.reserved)
        self._enter("nvmlDeviceGetMemoryInfo_v2", handle.key)
        if not self.memory_v2:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        return c_nvmlMemory_v2_t(version=version, total=d.total, reserved=d.reserved, free=free, used=d.used)

    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> c_nvmlUtilization_t:
        self._enter("nvmlDeviceGetUtilizationRates", handle.key)
        d = self._dev(handle)
        if isinstance(d, FakeMig):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)  # as on real MIG devices
        return c_nvmlUtilization_t(gpu=d.util_pct, memory=0)

    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", handle.key)
        d = self._dev(handle)
        if isinstance(d, FakeMig) or sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return d.temp_c

    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int:
        self._enter("nvmlDeviceGetPowerUsage", handle.key)
        d = self._dev(handle)
        if isinstance(d, FakeMig):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return d.power_mw

    def nvmlDeviceGetClockInfo(self, handle: Handle, type: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", handle.key)
        d = self._dev(handle)
        if isinstance(d, FakeMig) or type != NVML_CLOCK_SM:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return d.sm_clock_mhz

    def _procs(self, handle: Handle) -> list[ProcessInfo]:
        d = self._dev(handle)
        return [
            # pynvml turns NVML_VALUE_NOT_AVAILABLE into None; keep both shapes in play
            ProcessInfo(pid, None if mem == -1 else (NVML_VALUE_NOT_AVAILABLE if mem is None else mem))
            for pid, mem in d.processes
        ]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[ProcessInfo]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", handle.key)
        if not self.procs_v3:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        return self._procs(handle)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: Handle) -> list[ProcessInfo]:
        self._enter("nvmlDeviceGetComputeRunningProcesses_v2", handle.key)
        return self._procs(handle)

    # -- MIG ------------------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, device: Handle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", device.key)
        d = self._dev(device)
        if isinstance(d, FakeMig) or d.mig_mode is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [d.mig_mode, d.mig_mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: Handle) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", device.key)
        d = self._dev(device)
        assert isinstance(d, FakeGpu)
        return 7 if d.mig_mode is not None else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Handle, index: int) -> Handle:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", (device.gpu, index))
        d = self._dev(device)
        assert isinstance(d, FakeGpu)
        if index >= len(d.migs) or d.migs[index] is None:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return Handle(device.gpu, index)

    def nvmlDeviceGetGpuInstanceId(self, device: Handle) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", device.key)
        d = self._dev(device)
        if not isinstance(d, FakeMig):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return d.gi_id
