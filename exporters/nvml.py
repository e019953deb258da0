"""Local GPUs through NVML (``pynvml``, package ``nvidia-ml-py``) → :class:`GpuSample`.

``NvmlReader(nvml=None, host=None)``: ``start()`` initialises NVML and says whether GPU metrics
are on (:class:`NvmlStatus`); ``read()`` returns one sample per GPU and one per MIG device;
``close()`` shuts NVML down. The ``nvml`` argument is the ``pynvml`` module (imported lazily by
default); tests pass a fake with the same function names and error classes.

Robustness, the point of this module (a monitoring agent must never crash the host's service):

* ``start()`` never raises. No ``pynvml``, no ``libnvidia-ml.so.1``, no driver loaded, … give
  ``NvmlStatus(enabled=False, reason="NVML not available: <why>")`` and one INFO log line;
  ``read()`` then returns ``[]``.
* ``read()`` never raises. An error on one call degrades one field: it is ``None`` and
  ``GpuSample.errors`` says why (``"power: Not Supported"``). A GPU whose handle cannot be
  obtained (``GPU is lost``) is skipped; the others are still read, and the reason is kept in
  :attr:`NvmlReader.last_errors` (logged at WARNING when it changes, not on every read).

Values and units (pynvml ``nvml.py`` 13.x signatures):

* memory: ``nvmlDeviceGetMemoryInfo(handle, version=nvmlMemory_v2)`` where the driver has it.
  The v2 ``used`` excludes the memory the driver reserves for itself, as ``nvidia-smi``'s
  "Used" does (R510+); v1 ``used`` includes it (``used = total - free``). ``total`` is the whole
  framebuffer in both (``= reserved + used + free`` in v2), as ``nvidia-smi``'s memory.total.
  ``FunctionNotFound`` / ``ArgumentVersionMismatch`` (an older driver) switch the reader to v1
  for good; ``NotSupported`` falls back to v1 for that call only. Bytes.
* utilisation: ``nvmlDeviceGetUtilizationRates(h).gpu / 100`` (percent of the last sample period
  in which a kernel ran) → 0..1.
* temperature: ``nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU)`` → °C.
* power: ``nvmlDeviceGetPowerUsage(h)`` (milliwatts) → watts.
* SM clock: ``nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM)`` (MHz) → hertz (tensor-pipe activity and
  XID errors need DCGM: they come from a dcgm-exporter source, not from here).
* processes: ``nvmlDeviceGetComputeRunningProcesses`` (the v3 entry point), falling back to
  ``nvmlDeviceGetComputeRunningProcesses_v2`` on ``FunctionNotFound``. ``usedGpuMemory`` is
  ``None`` where NVML cannot say (``NVML_VALUE_NOT_AVAILABLE``, e.g. Windows WDDM or no
  permission). Names come from ``nvmlSystemGetProcessName`` where allowed (``None`` otherwise:
  in a container the PID is often from another namespace).
* MIG: where ``nvmlDeviceGetMigMode`` reports ``current == NVML_DEVICE_MIG_ENABLE``, every slot
  ``0 .. nvmlDeviceGetMaxMigDeviceCount - 1`` is tried with ``nvmlDeviceGetMigDeviceHandleByIndex``
  (an empty slot answers ``NotFound`` and is skipped). A MIG device's index is
  ``"<gpu>/<GPU instance id>"`` (``nvmlDeviceGetGpuInstanceId``): the GI id ``nvidia-smi`` prints
  and ``dcgm-exporter`` labels ``GPU_I_ID``, so NVML and DCGM rows name a MIG device alike (the
  slot number stands in, with an error note, if the id cannot be read). A MIG device carries
  its own UUID (``MIG-…``), name, memory, utilisation (usually ``Not Supported``) and processes;
  temperature and power belong to the physical GPU and are read on its sample only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from core.samples import GpuProcess, GpuReading, GpuSample
from exporters.base import Clock, Schedule
from exporters.http import Http

__all__ = ["NvmlReader", "NvmlSource", "NvmlStatus"]

log = logging.getLogger(__name__)

# Error codes, as pynvml defines them (``NVML_ERROR_*``); used when the module lacks a name.
_NOT_SUPPORTED = 3
_NOT_FOUND = 6
_INVALID_ARGUMENT = 2
_FUNCTION_NOT_FOUND = 13
_ARGUMENT_VERSION_MISMATCH = 25
_NVML_MEMORY_V2 = 0x02000028  # pynvml.nvmlMemory_v2
_TEMPERATURE_GPU = 0  # pynvml.NVML_TEMPERATURE_GPU
_CLOCK_SM = 1  # pynvml.NVML_CLOCK_SM
_MIG_ENABLE = 1  # pynvml.NVML_DEVICE_MIG_ENABLE
_VALUE_NOT_AVAILABLE = 2**64 - 1  # pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
_VALUE_NOT_AVAILABLE_UINT = 2**32 - 1


@dataclass(frozen=True, slots=True)
class NvmlStatus:
    """What ``NvmlReader.start()`` found: whether GPU metrics are on, and why not."""

    enabled: bool
    reason: str | None = None
    driver_version: str | None = None
    device_count: int = 0


def _why(exc: BaseException) -> str:
    """A short reason for an NVML (or any) error: pynvml's text, e.g. ``Not Supported``."""
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ may itself call into a missing library
        text = ""
    if not text:
        code = getattr(exc, "value", None)
        text = f"NVML error {code}" if code is not None else type(exc).__name__
    return text


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class NvmlReader:
    """Reads every local GPU (and MIG device) through NVML; see the module docstring.

    >>> reader = NvmlReader()                     # doctest: +SKIP
    >>> reader.start()                            # doctest: +SKIP
    NvmlStatus(enabled=False, reason='NVML not available: NVML Shared Library Not Found', ...)
    >>> reader.read()                             # doctest: +SKIP
    []
    """

    def __init__(self, nvml: object | None = None, host: str | None = None) -> None:
        """``nvml``: the ``pynvml`` module (imported at ``start`` when None) or a stand-in
        with its API (tests); ``host``: how readings name this machine."""
        self._nvml: Any = nvml  # pynvml's API is untyped: its calls are checked at run time
        self.host = host if host is not None else socket.gethostname()
        self.status: NvmlStatus | None = None
        #: why GPUs were skipped on the last read (handle not obtainable, count failed, …)
        self.last_errors: tuple[str, ...] = ()
        self._initialised = False
        self._mem_v2 = True  # False once the driver lacks nvmlDeviceGetMemoryInfo_v2
        self._procs_v3 = True  # False once the driver lacks ..._ComputeRunningProcesses_v3

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> NvmlStatus:
        """Initialise NVML. Never raises; a second call returns the first call's status."""
        if self.status is not None:
            return self.status
        status = self._start()
        self.status = status
        if status.enabled:
            log.info("NVML %s: %d GPU(s)", status.driver_version or "(driver version unknown)",
                     status.device_count)
        else:
            # no NVIDIA driver at all is the normal case on a machine without GPUs: not worth a
            # line at every start (/api/v1/gpus says why); a driver that fails is
            quiet = "Library Not Found" in (status.reason or "")
            log.log(logging.DEBUG if quiet else logging.INFO, "GPU metrics off: %s", status.reason)
        return status

    def _start(self) -> NvmlStatus:
        if self._nvml is None:
            try:
                import pynvml
            except Exception as e:  # ImportError, or a broken install
                return NvmlStatus(False, f"NVML not available: cannot import pynvml ({_why(e)})")
            self._nvml = pynvml
        nv = self._nvml
        try:
            nv.nvmlInit()
        except Exception as e:  # LibraryNotFound, DriverNotLoaded, NoPermission, OSError, …
            return NvmlStatus(False, f"NVML not available: {_why(e)}")
        self._initialised = True
        driver: str | None
        try:
            driver = _text(nv.nvmlSystemGetDriverVersion())
        except Exception:
            driver = None
        try:
            count = int(nv.nvmlDeviceGetCount())
        except Exception as e:
            self.close()
            return NvmlStatus(False, f"NVML not available: cannot count GPUs ({_why(e)})", driver)
        return NvmlStatus(True, None, driver, count)

    def close(self) -> None:
        """Shut NVML down (idempotent; never raises)."""
        if not self._initialised:
            return
        self._initialised = False
        try:
            self._nvml.nvmlShutdown()
        except Exception as e:
            log.debug("nvmlShutdown failed: %s", _why(e))

    # -- reading --------------------------------------------------------------------------------
    def read(self) -> list[GpuSample]:
        """One sample per GPU and per MIG device, in index order. Never raises."""
        if not self._initialised or self.status is None or not self.status.enabled:
            return []
        out: list[GpuSample] = []
        skipped: list[str] = []
        try:
            for i in range(self.status.device_count):
                try:
                    handle = self._nvml.nvmlDeviceGetHandleByIndex(i)
                except Exception as e:
                    skipped.append(f"gpu {i}: skipped, no handle: {_why(e)}")
                    continue
                try:
                    out.extend(self._read_gpu(i, handle))
                except Exception as e:  # a bug or an exotic failure: lose this GPU, not the read
                    skipped.append(f"gpu {i}: skipped: {_why(e)}")
        except Exception as e:  # pragma: no cover - defensive: never let a read escape
            skipped.append(f"read failed: {_why(e)}")
        errors = tuple(skipped)
        if errors != self.last_errors and errors:
            log.warning("NVML: %s", "; ".join(errors))
        self.last_errors = errors
        return out

    def _read_gpu(self, i: int, handle: Any) -> list[GpuSample]:
        nv = self._nvml
        errors: list[str] = []
        uuid = self._call(errors, "uuid", lambda: _text(nv.nvmlDeviceGetUUID(handle))) or ""
        name = self._call(errors, "name", lambda: _text(nv.nvmlDeviceGetName(handle)))
        used, free, total = self._memory(handle, errors)
        util = self._call(errors, "utilization", lambda: self._utilization(handle))
        temp_sensor = getattr(nv, "NVML_TEMPERATURE_GPU", _TEMPERATURE_GPU)
        temp = self._call(errors, "temperature",
                          lambda: float(nv.nvmlDeviceGetTemperature(handle, temp_sensor)))
        power = self._call(errors, "power", lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        clock_sm = getattr(nv, "NVML_CLOCK_SM", _CLOCK_SM)
        clock = self._call(errors, "sm clock", lambda: float(nv.nvmlDeviceGetClockInfo(handle, clock_sm)) * 1e6)
        procs = self._call(errors, "processes", lambda: self._processes(handle))
        migs, mig_errors = self._migs(i, handle)
        errors.extend(mig_errors)
        gpu = GpuSample(
            host=self.host, index=str(i), uuid=uuid, name=name,
            memory_used_bytes=used, memory_free_bytes=free, memory_total_bytes=total,
            utilization_ratio=util, temperature_celsius=temp, power_watts=power,
            processes=procs or (), source="nvml", errors=tuple(errors), sm_clock_hertz=clock,
        )
        return [gpu, *migs]

    def _migs(self, i: int, handle: Any) -> tuple[list[GpuSample], list[str]]:
        """The MIG devices of GPU ``i`` (none unless MIG mode is on), and notes for the GPU."""
        nv = self._nvml
        notes: list[str] = []
        try:
            current = nv.nvmlDeviceGetMigMode(handle)[0]
        except Exception as e:
            if getattr(e, "value", None) != self._code("NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED):
                notes.append(f"mig: {_why(e)}")
            return [], notes  # NotSupported: a GPU without MIG, the common case
        if current != getattr(nv, "NVML_DEVICE_MIG_ENABLE", _MIG_ENABLE):
            return [], notes
        try:
            slots = int(nv.nvmlDeviceGetMaxMigDeviceCount(handle))
        except Exception as e:
            notes.append(f"mig: {_why(e)}")
            return [], notes
        empty = {self._code("NVML_ERROR_NOT_FOUND", _NOT_FOUND),
                 self._code("NVML_ERROR_INVALID_ARGUMENT", _INVALID_ARGUMENT)}
        out: list[GpuSample] = []
        for j in range(slots):
            try:
                mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
            except Exception as e:
                if getattr(e, "value", None) not in empty:
                    notes.append(f"mig {j}: {_why(e)}")
                continue
            try:
                out.append(self._read_mig(i, j, mig))
            except Exception as e:  # defensive, as for a whole GPU
                notes.append(f"mig {j}: {_why(e)}")
        return out, notes

    def _read_mig(self, i: int, slot: int, handle: Any) -> GpuSample:
        nv = self._nvml
        errors: list[str] = []
        gi = self._call(errors, "gpu instance id", lambda: int(nv.nvmlDeviceGetGpuInstanceId(handle)))
        if gi is None:
            errors[-1] += f" (index uses MIG slot {slot})"
        uuid = self._call(errors, "uuid", lambda: _text(nv.nvmlDeviceGetUUID(handle))) or ""
        name = self._call(errors, "name", lambda: _text(nv.nvmlDeviceGetName(handle)))
        used, free, total = self._memory(handle, errors)
        util = self._call(errors, "utilization", lambda: self._utilization(handle))
        procs = self._call(errors, "processes", lambda: self._processes(handle))
        return GpuSample(
            host=self.host, index=f"{i}/{gi if gi is not None else slot}", uuid=uuid, name=name,
            memory_used_bytes=used, memory_free_bytes=free, memory_total_bytes=total,
            utilization_ratio=util, processes=procs or (), source="nvml", errors=tuple(errors),
        )

    # -- one field each -------------------------------------------------------------------------
    def _code(self, name: str, default: int) -> int:
        value = getattr(self._nvml, name, default)
        return value if isinstance(value, int) else default

    @staticmethod
    def _call(errors: list[str], field: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:
            errors.append(f"{field}: {_why(e)}")
            return None

    def _utilization(self, handle: Any) -> float:
        return self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0

    def _memory(self, handle: Any, errors: list[str]) -> tuple[int | None, int | None, int | None]:
        nv = self._nvml
        if self._mem_v2:
            try:
                m = nv.nvmlDeviceGetMemoryInfo(handle, version=getattr(nv, "nvmlMemory_v2", _NVML_MEMORY_V2))
                return int(m.used), int(m.free), int(m.total)
            except Exception as e:
                code = getattr(e, "value", None)
                if code in (self._code("NVML_ERROR_FUNCTION_NOT_FOUND", _FUNCTION_NOT_FOUND),
                            self._code("NVML_ERROR_ARGUMENT_VERSION_MISMATCH",
                                       _ARGUMENT_VERSION_MISMATCH)):
                    self._mem_v2 = False  # the driver predates v2: stop asking
                elif code != self._code("NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED):
                    errors.append(f"memory: {_why(e)}")
                    return None, None, None
        try:
            m = nv.nvmlDeviceGetMemoryInfo(handle)
            return int(m.used), int(m.free), int(m.total)
        except Exception as e:
            errors.append(f"memory: {_why(e)}")
            return None, None, None

    def _processes(self, handle: Any) -> tuple[GpuProcess, ...]:
        nv = self._nvml
        procs: Any = None
        if self._procs_v3:
            try:
                procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception as e:
                if getattr(e, "value", None) != self._code("NVML_ERROR_FUNCTION_NOT_FOUND",
                                                          _FUNCTION_NOT_FOUND):
                    raise
                self._procs_v3 = False
        if procs is None:
            procs = nv.nvmlDeviceGetComputeRunningProcesses_v2(handle)
        out: list[GpuProcess] = []
        for p in procs:
            pid = int(p.pid)
            mem = getattr(p, "usedGpuMemory", None)
            if mem is not None and int(mem) in (_VALUE_NOT_AVAILABLE, _VALUE_NOT_AVAILABLE_UINT):
                mem = None
            try:
                name: str | None = _text(nv.nvmlSystemGetProcessName(pid)) or None
            except Exception:  # NoPermission / NotFound: another namespace or user
                name = None
            out.append(GpuProcess(pid=pid, name=name, used_memory_bytes=None if mem is None else int(mem)))
        return tuple(out)


@dataclass(frozen=True)
class NvmlSource:
    """The local-GPU source: one ``NvmlReader.read`` per interval, on a worker thread (NVML calls
    block). ``reader.start()`` must have enabled NVML; the collector starts it."""

    reader: NvmlReader
    interval: float
    schedule: Schedule = "after"
    name: str = "nvml"

    async def collect(self, http: Http, clock: Clock = time.time) -> GpuReading:
        ts = clock()
        try:
            samples = await asyncio.to_thread(self.reader.read)
        except Exception as exc:  # the reader degrades per field; this is a last resort
            log.exception("[sources.nvml] reading GPUs failed")
            return GpuReading(ts, "nvml", (), f"{type(exc).__name__}: {exc}")
        return GpuReading(ts, "nvml", tuple(samples))
