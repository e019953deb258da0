"""A simulated NVIDIA dcgm-exporter: one GPU node's ``/metrics`` body, printed as the exporter
prints it, so the demo has GPUs to show without a GPU.

Source: ``NVIDIA/dcgm-exporter`` ``internal/pkg/rendermetrics/render_metrics.go`` (the
``gpuMetricsFormat`` template) and ``etc/default-counters.csv`` (names, types, HELP texts), as
documented in :mod:`exporters.gpu_scrape` and recorded in
``tests/testdata/expositions/dcgm-4.5.3-h100x2.txt``:

* per field ``# HELP <field> <help>`` / ``# TYPE <field> <gauge|counter>``, then one line per GPU
  with the labels in the template's order ``gpu``, ``UUID``, ``pci_bus_id``, ``device``
  (``nvidia<N>``), ``modelName``, ``Hostname``, then the label-type fields
  (``DCGM_FI_DRIVER_VERSION``) and attributes (``err_code``/``err_msg`` on ``XID_ERRORS``);
  fields in the CSV's order; no blank lines.
* integer fields print with ``%d`` (``FB_USED`` / ``FB_FREE`` / ``FB_RESERVED`` in MiB,
  ``GPU_UTIL`` in percent, temperatures in °C, clocks, counters), doubles with ``%f``
  (``POWER_USAGE`` in W, the ``PROF_*`` ratios): ``412.817000``.
* the exporter sets no Content-Type: Go's ``http.DetectContentType`` answers
  ``text/plain; charset=utf-8``.

The node: ``GPUS`` (two "NVIDIA H100 80GB HBM3", 81559 MiB framebuffer of which 519 MiB is the
driver's reservation, so used + free + reserved = 81559). What it prints is a pure function of
``(seed, now)`` (:func:`readings`, the *truth* tests compare against): a load in [0, 1] per GPU,
a slow sine (10-minute period, a phase per GPU) plus a per-second jitter drawn from a
``random.Random`` seeded with ``(seed, gpu, whole second)``, drives utilisation (0-100 %),
memory used (as a vLLM server holds it: GPU 0 at vLLM's default ``--gpu-memory-utilization``
0.9 — weights and the preallocated KV pool — plus a little that load adds, GPU 1 at 0.6; never
above 93 % of the framebuffer: over 90 % like every healthy vLLM GPU, below the GPUMemoryHigh
rule's 98 %), temperature (30-78 °C) and power
(70-690 W). The energy counter grows with the time since the backend (re)started.

Served by :class:`sim.server.SimFleet` like an engine: a ``SimBackend`` with no models whose
renderer is :class:`DcgmRenderer` (the render time is ``backend.last``, which
``SimBackend.render(now)`` sets to ``now``).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sim.state import SimBackend

CONTENT_TYPE = "text/plain; charset=utf-8"
HOSTNAME = "sim-gpu-node"
DRIVER_VERSION = "570.133.20"
MODEL = "NVIDIA H100 80GB HBM3"
TOTAL_MIB = 81559  # nvidia-smi's memory.total of an H100 80GB HBM3
RESERVED_MIB = 519  # the driver's reservation (FB_RESERVED)
PERIOD = 600.0  # seconds of one load cycle
MAX_USED_RATIO = 0.93  # memory used never exceeds this share of the framebuffer

#: no histograms: the exporter reports gauges and counters only
LAYOUTS: Mapping[str, tuple[float, ...]] = {}


@dataclass(frozen=True)
class SimGpu:
    """One simulated GPU: identity and how busy it gets."""

    index: int
    pci_bus_id: str
    base_used_mib: int  # allocated whatever the load (weights, the KV-cache pool)
    swing_used_mib: int  # added at full load
    busy: float  # scales the load: 1.0 = the node's busiest GPU
    phase: float  # of the load cycle, radians
    model: str = MODEL
    total_mib: int = TOTAL_MIB
    reserved_mib: int = RESERVED_MIB


GPUS: tuple[SimGpu, ...] = (
    SimGpu(0, "00000000:18:00.0", base_used_mib=73_400, swing_used_mib=1_800, busy=1.0, phase=0.0),
    SimGpu(1, "00000000:2A:00.0", base_used_mib=48_900, swing_used_mib=1_500, busy=0.6, phase=2.1),
)


@dataclass(frozen=True)
class GpuReading:
    """What the exporter prints for one GPU at one instant (the units it prints in)."""

    gpu: SimGpu
    uuid: str
    load: float
    fb_used_mib: int
    fb_free_mib: int
    fb_reserved_mib: int
    util_percent: int
    gpu_temp_c: int
    memory_temp_c: int
    power_mw: int  # NVML reports milliwatts; DCGM divides by 1000
    sm_clock_mhz: int
    mem_clock_mhz: int
    mem_copy_util_percent: int
    energy_mj: int
    gr_engine_active: float
    tensor_active: float
    dram_active: float

    @property
    def power_w(self) -> float:
        return self.power_mw / 1000

    @property
    def total_mib(self) -> int:
        return self.fb_used_mib + self.fb_free_mib + self.fb_reserved_mib


def gpu_uuid(seed: int, gpu: SimGpu) -> str:
    """A stable, real-looking ``GPU-xxxxxxxx-…`` UUID per (seed, index)."""
    bits = random.Random(f"dcgm-uuid:{seed}:{gpu.index}").getrandbits(128)
    return f"GPU-{uuid.UUID(int=bits)}"


def load(seed: int, gpu: SimGpu, now: float) -> float:
    """The GPU's load at ``now``, in [0, 1]."""
    jitter = random.Random(f"dcgm-load:{seed}:{gpu.index}:{math.floor(now)}").uniform(-1.0, 1.0)
    raw = 0.55 + 0.35 * math.sin(2 * math.pi * now / PERIOD + gpu.phase) + 0.1 * jitter
    return min(1.0, max(0.0, raw)) * gpu.busy


def reading(seed: int, gpu: SimGpu, now: float, started_at: float | None = None) -> GpuReading:
    ld = load(seed, gpu, now)
    usable = gpu.total_mib - gpu.reserved_mib
    used = min(gpu.base_used_mib + round(gpu.swing_used_mib * ld), int(MAX_USED_RATIO * gpu.total_mib))
    mean_power_w = 70 + 620 * 0.55 * gpu.busy
    uptime = 0.0 if started_at is None else max(0.0, now - started_at)
    temp = 30 + round(48 * ld)
    return GpuReading(
        gpu=gpu, uuid=gpu_uuid(seed, gpu), load=ld,
        fb_used_mib=used, fb_free_mib=usable - used, fb_reserved_mib=gpu.reserved_mib,
        util_percent=round(100 * ld), gpu_temp_c=temp, memory_temp_c=temp + 4,
        power_mw=70_000 + round(620_000 * ld), sm_clock_mhz=1980 if ld > 0.02 else 345,
        mem_clock_mhz=2619, mem_copy_util_percent=round(62 * ld),
        energy_mj=round(uptime * mean_power_w * 1000),
        gr_engine_active=round(0.96 * ld, 6), tensor_active=round(0.43 * ld, 6),
        dram_active=round(0.61 * ld, 6),
    )


def readings(seed: int, now: float, started_at: float | None = None,
             gpus: tuple[SimGpu, ...] = GPUS) -> list[GpuReading]:
    """Every GPU's reading at ``now``: what :class:`DcgmRenderer` prints for that instant."""
    return [reading(seed, g, now, started_at) for g in gpus]


def _d(v: int) -> str:
    return f"{v:d}"


def _f(v: float) -> str:
    return f"{v:f}"


#: (field, type, help, value as printed) in ``etc/default-counters.csv`` order
_FIELDS: tuple[tuple[str, str, str, Callable[[GpuReading], str]], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda r: _d(r.sm_clock_mhz)),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda r: _d(r.mem_clock_mhz)),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", lambda r: _d(r.memory_temp_c)),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda r: _d(r.gpu_temp_c)),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda r: _f(r.power_w)),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter",
     "Total energy consumption since boot (in mJ).", lambda r: _d(r.energy_mj)),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", lambda r: _d(0)),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda r: _d(r.util_percent)),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda r: _d(r.mem_copy_util_percent)),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", lambda r: _d(0)),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", lambda r: _d(0)),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", lambda r: _d(0)),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda r: _d(r.fb_free_mib)),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda r: _d(r.fb_used_mib)),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).",
     lambda r: _d(r.fb_reserved_mib)),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
     lambda r: _f(r.gr_engine_active)),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
     lambda r: _f(r.tensor_active)),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
     "Ratio of cycles the device memory interface is active sending or receiving data.",
     lambda r: _f(r.dram_active)),
)


def _labels(r: GpuReading, hostname: str, field: str) -> str:
    g = r.gpu
    out = (f'gpu="{g.index}",UUID="{r.uuid}",pci_bus_id="{g.pci_bus_id}",device="nvidia{g.index}",'
           f'modelName="{g.model}",Hostname="{hostname}",DCGM_FI_DRIVER_VERSION="{DRIVER_VERSION}"')
    if field == "DCGM_FI_DEV_XID_ERRORS":  # attributes, after the label-type fields
        out += ',err_code="0",err_msg="No Error"'
    return out


def render_body(rs: list[GpuReading], hostname: str = HOSTNAME) -> bytes:
    out: list[str] = []
    for field, typ, help_text, value in _FIELDS:
        out.append(f"# HELP {field} {help_text}\n# TYPE {field} {typ}\n")
        for r in rs:
            out.append(f"{field}{{{_labels(r, hostname, field)}}} {value(r)}\n")
    return "".join(out).encode("utf-8")


class DcgmRenderer:
    """Prints a GPU node (``SimBackend`` with no models) as dcgm-exporter's ``/metrics``."""

    engine = "dcgm"
    content_type = CONTENT_TYPE

    def __init__(self, hostname: str = HOSTNAME, gpus: tuple[SimGpu, ...] = GPUS) -> None:
        self.hostname = hostname
        self.gpus = gpus
        self.layouts = LAYOUTS

    def readings(self, backend: SimBackend, now: float | None = None) -> list[GpuReading]:
        t = backend.last if now is None else now
        return readings(backend.seed, t, backend.started_at, self.gpus)

    def render(self, backend: SimBackend) -> bytes:
        return render_body(self.readings(backend), self.hostname)


def renderer(variant: str | None = None, hostname: str = HOSTNAME) -> DcgmRenderer:
    if variant not in (None, "4.5.3"):
        raise ValueError(f"unknown dcgm variant {variant!r}; expected None")
    return DcgmRenderer(hostname)
