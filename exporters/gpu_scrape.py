"""GPU samples from scraped expositions: NVIDIA dcgm-exporter and Triton's own GPU metrics.

Pure mapping, no I/O: ``parse(body, keep=WANTED_DCGM)`` → :func:`from_dcgm`, and
``parse(body, keep=WANTED_TRITON)`` → :func:`from_triton`, each giving ``GpuSample``s with
``source="dcgm"`` / ``"triton"`` in the units of :mod:`exporters.nvml` (bytes, 0..1, °C, W).
A field the exposition does not carry is ``None``.

**dcgm-exporter** (``NVIDIA/dcgm-exporter`` tag ``4.5.3-4.8.2``: ``etc/default-counters.csv``,
``internal/pkg/rendermetrics/render_metrics.go``, ``internal/pkg/collector/gpu_collector.go``)

* one series per GPU, labels in this order: ``gpu`` (index), ``UUID`` (``uuid`` with
  ``--use-old-namespace``), ``pci_bus_id``, ``device`` (``nvidia<N>``), ``modelName``, then
  ``GPU_I_PROFILE`` and ``GPU_I_ID`` for a MIG GPU instance, ``Hostname`` (unless
  ``--no-hostname``; in Kubernetes the node name), then label-type fields
  (``DCGM_FI_DRIVER_VERSION``) and attributes (``container``/``namespace``/``pod`` with pod
  mapping, ``err_code``/``err_msg`` on XID). Integer fields print with ``%d``, doubles ``%f``;
  DCGM "blank" values (not supported, no permission) are not printed at all.
* ``DCGM_FI_DEV_FB_USED`` / ``_FREE`` / ``_RESERVED`` (and ``_TOTAL`` where configured) are
  **MiB** → bytes (× 1,048,576). DCGM reads NVML's v2 memory info: ``FB_USED`` excludes the
  driver's reservation, like ``nvidia-smi``'s memory.used, and ``nvidia-smi``'s memory.total is
  the whole framebuffer = used + free + reserved. So ``memory_total_bytes`` is ``FB_TOTAL`` when
  exported, else ``FB_USED + FB_FREE + FB_RESERVED`` (``FB_RESERVED`` is in the default set since
  the 3.x exporters; without it the sum is ``used + free``, which undercounts the total by the
  reservation, a few hundred MiB, only when the CSV omits ``FB_RESERVED``).
* ``DCGM_FI_DEV_GPU_UTIL`` (percent) → ratio; ``DCGM_FI_DEV_GPU_TEMP`` °C;
  ``DCGM_FI_DEV_POWER_USAGE`` W; ``DCGM_FI_DEV_SM_CLOCK`` MHz → Hz;
  ``DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`` (a ratio of cycles, 0..1; a profiling field, absent where
  DCGM's profiling module is off); ``DCGM_FI_DEV_XID_ERRORS`` the code of the last XID error
  (0: none since the exporter started).
* MIG: with MIG on, the exporter (default ``--devices f``) reports each GPU *instance* instead
  of the GPU, labelled with the parent's ``gpu`` and ``UUID`` plus ``GPU_I_ID``. Its sample is
  ``index="<gpu>/<GPU_I_ID>"`` (as :class:`exporters.nvml.NvmlReader` names MIG devices), the
  parent's UUID (DCGM does not export MIG UUIDs: within a host, ``index`` tells instances
  apart), name ``"<modelName> MIG <GPU_I_PROFILE>"`` (NVML's MIG device name). ``GPU_UTIL`` is
  not supported on MIG (``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` is the MIG-capable signal, but it
  measures a different thing, so it is not substituted): ``utilization_ratio`` stays ``None``.
* ``host`` is the ``Hostname`` label (``hostname`` in some releases) where present, else the
  ``host`` argument. Several series for one device (one per pod sharing it) carry the same
  value; the first wins.

**Triton** (``triton-inference-server/core`` @ ``73aad7c3348d040c7087d57837d75822c488495e``,
``src/metrics.cc``, ``PollDcgmMetrics``): ``nv_gpu_utilization`` (``DCGM_FI_DEV_GPU_UTIL × 0.01``,
0..1), ``nv_gpu_memory_total_bytes`` / ``nv_gpu_memory_used_bytes`` (``FB_TOTAL`` / ``FB_USED``
MiB × 1024 × 1024), ``nv_gpu_power_usage`` (W); one label, ``gpu_uuid``. Triton says nothing of
the index, so ``index`` is ``""``: the UUID is the key. When a DCGM read fails Triton writes
**0** (and after repeated failures stops updating), so a zero memory total or a zero power draw
is a failed read, not a value: those fields are ``None`` with a note in ``errors``. A zero
utilisation is a legitimate idle reading and is kept. Memory free = total - used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.samples import GpuSample
from exporters.families import MetricFamily

__all__ = ["WANTED_DCGM", "WANTED_TRITON", "from_dcgm", "from_triton"]

MIB = 1 << 20

FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
FB_TOTAL = "DCGM_FI_DEV_FB_TOTAL"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
TENSOR_ACTIVE = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"
XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"
MHZ = 1e6

NV_UTIL = "nv_gpu_utilization"
NV_MEM_TOTAL = "nv_gpu_memory_total_bytes"
NV_MEM_USED = "nv_gpu_memory_used_bytes"
NV_POWER = "nv_gpu_power_usage"

#: the families :func:`from_dcgm` reads (the parser's ``keep``)
WANTED_DCGM = frozenset({FB_USED, FB_FREE, FB_RESERVED, FB_TOTAL, GPU_UTIL, GPU_TEMP, POWER_USAGE, SM_CLOCK,
                         TENSOR_ACTIVE, XID_ERRORS})
#: the families :func:`from_triton` reads (the parser's ``keep``)
WANTED_TRITON = frozenset({NV_UTIL, NV_MEM_TOTAL, NV_MEM_USED, NV_POWER})


@dataclass
class _Device:
    host: str
    index: str
    uuid: str
    name: str | None
    values: dict[str, float] = field(default_factory=dict)


def _mib(values: Mapping[str, float], name: str) -> int | None:
    v = values.get(name)
    return None if v is None else round(v * MIB)


def from_dcgm(families: Mapping[str, MetricFamily], host: str) -> list[GpuSample]:
    """GPU (and MIG instance) samples from a dcgm-exporter scrape; see the module docstring."""
    devices: dict[tuple[str, str, str, str], _Device] = {}
    for fam_name in sorted(WANTED_DCGM):
        fam = families.get(fam_name)
        if fam is None:
            continue
        for s in fam.samples:
            if not math.isfinite(s.value):
                continue
            labels = s.labels
            gpu = labels.get("gpu")
            if gpu is None:
                continue  # not a GPU entity (switch, link, CPU)
            uuid = labels.get("UUID", labels.get("uuid", ""))
            where = labels.get("Hostname") or labels.get("hostname") or host
            gi = labels.get("GPU_I_ID", "")
            key = (where, gpu, uuid, gi)
            dev = devices.get(key)
            if dev is None:
                model = labels.get("modelName") or None
                profile = labels.get("GPU_I_PROFILE")
                if model is not None and gi and profile:
                    model = f"{model} MIG {profile}"
                dev = devices[key] = _Device(where, f"{gpu}/{gi}" if gi else gpu, uuid, model)
            dev.values.setdefault(fam_name, s.value)
    out: list[GpuSample] = []
    for dev in sorted(devices.values(), key=lambda d: (d.host, _index_key(d.index), d.uuid)):
        v = dev.values
        used, free, reserved = _mib(v, FB_USED), _mib(v, FB_FREE), _mib(v, FB_RESERVED)
        total = _mib(v, FB_TOTAL)
        if total is None and used is not None and free is not None:
            total = used + free + (reserved or 0)
        util = v.get(GPU_UTIL)
        temp = v.get(GPU_TEMP)
        power = v.get(POWER_USAGE)
        clock, tensor, xid = v.get(SM_CLOCK), v.get(TENSOR_ACTIVE), v.get(XID_ERRORS)
        out.append(GpuSample(
            host=dev.host, index=dev.index, uuid=dev.uuid, name=dev.name,
            memory_used_bytes=used, memory_free_bytes=free, memory_total_bytes=total,
            utilization_ratio=None if util is None else util / 100.0,
            temperature_celsius=None if temp is None else float(temp),
            power_watts=None if power is None else float(power),
            source="dcgm",
            sm_clock_hertz=None if clock is None else clock * MHZ,
            tensor_active_ratio=tensor,
            last_xid=None if xid is None else int(xid),
        ))
    return out


def _index_key(index: str) -> tuple[int, ...]:
    """"3" → (3,), "0/9" → (0, 9): numeric order, so "10" sorts after "9"."""
    try:
        return tuple(int(p) for p in index.split("/"))
    except ValueError:
        return (1 << 30,)


def from_triton(families: Mapping[str, MetricFamily], host: str) -> list[GpuSample]:
    """GPU samples from Triton's ``nv_gpu_*`` families (none on a CPU-only server)."""
    values: dict[str, dict[str, float]] = {}
    for fam_name in (NV_UTIL, NV_MEM_TOTAL, NV_MEM_USED, NV_POWER):
        fam = families.get(fam_name)
        if fam is None:
            continue
        for s in fam.samples:
            uuid = s.labels.get("gpu_uuid")
            if uuid is None or not math.isfinite(s.value):
                continue
            values.setdefault(uuid, {}).setdefault(fam_name, s.value)
    out: list[GpuSample] = []
    for uuid in sorted(values):
        v = values[uuid]
        errors: list[str] = []
        total_f, used_f = v.get(NV_MEM_TOTAL), v.get(NV_MEM_USED)
        total = used = free = None
        if total_f is not None and total_f <= 0:
            errors.append("memory: Triton reported 0 bytes total (its DCGM read failed)")
        elif total_f is not None:
            total = round(total_f)
            if used_f is not None:
                used = round(used_f)
                free = max(total - used, 0)
        elif used_f is not None:
            used = round(used_f)
        power = v.get(NV_POWER)
        if power is not None and power <= 0:
            errors.append("power: Triton reported 0 W (its DCGM read failed)")
            power = None
        out.append(GpuSample(
            host=host, index="", uuid=uuid, name=None,
            memory_used_bytes=used, memory_free_bytes=free, memory_total_bytes=total,
            utilization_ratio=v.get(NV_UTIL), power_watts=power,
            source="triton", errors=tuple(errors),
        ))
    return out
