"""Ready-made simulated fleets: the demo's mixed fleet and large uniform fleets for benchmarks.

``IncidentScript`` cycles scripted incidents through the demo fleet so that every failure mode
shows up within a few minutes: a latency spike, a queue build-up, an error burst, an outage and
a restart (counter reset).

The demo fleet also serves one simulated GPU node (``GPU_NODE``): a dcgm-exporter with two H100s
(``sim/engines/dcgm.py``) on its own port of the same ``SimFleet``. It is not an inference
backend: ``demo_config`` lists it under ``gpus.dcgm``, not ``backends``, and ``IncidentScript``
never picks it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.engines import dcgm, make_renderer
from sim.server import SimFleet
from sim.state import Incident, Profile, SimBackend


@dataclass(frozen=True)
class Spec:
    name: str
    engine: str
    variant: str | None
    models: tuple[str, ...]
    profile: Profile
    tls: bool = False  # served over https (its certificate is checked too)
    probe: bool = False  # the demo probes its streaming endpoint


DEMO: tuple[Spec, ...] = (
    Spec("vllm-a", "vllm", None, ("llama-3.1-8b",), Profile(request_rate=4, ttft=0.18, itl=0.025,
                                                             stream_ttft=0.15, stream_token_interval=0.02),
         tls=True, probe=True),
    Spec("vllm-b", "vllm", "v0", ("qwen2.5-7b", "llama-3.1-8b"), Profile(request_rate=2, ttft=0.3, itl=0.03)),
    Spec("tgi-a", "tgi", None, ("mistral-7b",), Profile(request_rate=3, ttft=0.25, itl=0.035,
                                                       stream_ttft=0.3, stream_token_interval=0.035), probe=True),
    Spec("triton-a", "triton", "trtllm", ("ensemble",), Profile(request_rate=3, ttft=0.2, itl=0.02)),
    Spec("sglang-a", "sglang", None, ("llama-3.1-70b",), Profile(request_rate=2, ttft=0.45, itl=0.04,
                                                                stream_ttft=0.5, stream_token_interval=0.04),
         probe=True),
    Spec("llamacpp-a", "llamacpp", None, ("gemma-2-9b",), Profile(request_rate=1, ttft=0.6, itl=0.05)),
)

#: the demo's simulated GPU node: the ``SimFleet`` name of its dcgm-exporter and its hostname
GPU_NODE = dcgm.HOSTNAME
#: the demo backends served by the GPU node's GPUs (``gpu_host``)
ON_GPU_NODE = ("vllm-a", "vllm-b")

#: the demo's https backend presents a certificate that expires this many days after start
DEMO_CERT_DAYS = 10.0


def demo_tls(directory: Path, specs: tuple[Spec, ...] = DEMO) -> tuple[dict[str, ssl.SSLContext], str]:
    """Server contexts for the demo's https backends (a private CA, a leaf for 127.0.0.1 that
    expires in ``DEMO_CERT_DAYS``) and the CA file the collector trusts."""
    from sim.certs import DAY, make_ca, make_leaf, server_context

    root = make_ca("inferwatch demo CA")
    leaf = make_leaf(root, "127.0.0.1", "localhost", not_after=time.time() + DEMO_CERT_DAYS * DAY)
    ca_file = root.write_pem(directory / "demo-ca.pem")
    ctx = server_context(leaf, [], directory)
    return {s.name: ctx for s in specs if s.tls}, ca_file


def demo_config(fleet: SimFleet, *, storage: str, listen: str, interval: str, ca_file: str,
                specs: tuple[Spec, ...] = DEMO) -> dict[str, Any]:
    """The config ``inferwatch demo`` runs with (a plain mapping, validated like a user's file)."""
    backends: list[dict[str, Any]] = []
    for s in specs:
        b: dict[str, Any] = {"name": s.name, "engine": s.engine, "url": fleet.url(s.name),
                             "labels": {"region": "demo", "variant": s.variant or "default"}}
        if s.tls:
            b["ca_file"] = ca_file
        if s.probe:
            b["probe"] = {"model": s.models[0], "prompt": "Say hi", "max_tokens": 16, "interval": "10s",
                          "timeout": "10s", "targets": {"ttft": "1s", "itl": "100ms"}}
        if s.name in ON_GPU_NODE and GPU_NODE in fleet.backends:
            b["gpu_host"] = GPU_NODE  # the fleet page's GPU memory column reads the node's GPUs
        backends.append(b)
    from core.units import parse_duration

    timeout = min(2.0, 0.8 * parse_duration(interval))  # a scrape never outlives its interval
    gpus: dict[str, Any] = {"nvml": "auto"}
    if GPU_NODE in fleet.backends:  # the simulated dcgm-exporter (see ``build``)
        gpus["dcgm"] = [{"url": fleet.url(GPU_NODE) + "/metrics", "host": GPU_NODE}]
    # the deployment checklist of the https backend's endpoint (a simulator: no HSTS, no auth, no
    # rate limit, a certificate 10 days from expiry — the audit page has something to say)
    audits = [{"name": s.name, "url": fleet.url(s.name), "model": s.models[0], "ca_file": ca_file, "interval": "10m",
               "stream_tokens": 32, "long_tokens": 64, "burst": 10, "timeout": "10s", "long_timeout": "30s"}
              for s in specs if s.tls]
    return {"storage": storage, "scrape_interval": interval, "scrape_timeout": timeout, "web": {"listen": listen},
            "tls_check_interval": "60s", "gpus": gpus, "evaluation_interval": "5s",
            "backends": backends, "slos": demo_slos(), "rule_overrides": DEMO_RULE_OVERRIDES, "audits": audits}


#: The default pack at demo speed: the same rules and thresholds over 1-minute windows with
#: ``for: 30s``, so that a 150-second incident fires its rule and resolves within the demo's
#: minutes (at the pack's own 5-minute windows and ``for``, one incident would take 10 minutes).
#: ``tests/test_demo_pack.py`` measures each incident's start -> firing and end -> resolved.
DEMO_RULE_OVERRIDES: dict[str, dict[str, str]] = {
    "TTFTp50High": {"expr": "p50(ttft_seconds[1m]) > 500ms", "for": "30s"},
    "TTFTp99High": {"expr": "p99(ttft_seconds[1m]) > 5s", "for": "30s"},
    "ErrorRateHigh": {"expr": "ratio(request_errors_total, requests_total[1m]) > 1%", "for": "30s"},
    "QueueDepthHigh": {"for": "30s"},
    "BackendDown": {"for": "30s"},
}

#: what each scripted incident must fire (a restart fires nothing: rates stay right across it)
INCIDENT_RULES: dict[str, tuple[str, ...]] = {
    "latency_spike": ("TTFTp50High", "TTFTp99High"),
    "queue_buildup": ("QueueDepthHigh",),
    "error_burst": ("ErrorRateHigh",),
    "outage": ("BackendDown",),
    "restart": (),
}


#: burn-rate alert windows for the demo's 1-hour SLOs (the defaults derive factors for the window,
#: which for 1h would be far below 1): the workbook's factors over windows an hour can hold
DEMO_SLO_ALERTING: dict[str, dict[str, Any]] = {
    "page_quick": {"long": "5m", "short": "1m", "factor": 14.4},
    "page_slow": {"long": "15m", "short": "3m", "factor": 6},
    "ticket_quick": {"long": "30m", "short": "5m", "factor": 3},
    "ticket_slow": {"long": "1h", "short": "10m", "factor": 1},
}


def demo_slos() -> list[dict[str, Any]]:
    """The demo's SLOs: 1-hour windows, so that their burn-down moves within minutes (the
    incident script's latency spikes and error bursts spend their budgets)."""
    return [
        {"name": "ttft-under-1s", "objective": "99%", "window": "1h", "good": "ttft_seconds < 1",
         "description": "99 % of requests get their first token within 1 s (all backends)",
         "alerting": DEMO_SLO_ALERTING},
        {"name": "availability", "objective": "99.5%", "window": "1h", "good": "availability",
         "description": "99.5 % of requests finish without an error (all backends)",
         "alerting": DEMO_SLO_ALERTING},
    ]


def build(specs: tuple[Spec, ...] = DEMO, now: float | None = None, gpu_node: bool = True) -> list[SimBackend]:
    """The backends of ``specs`` and, with ``gpu_node``, the simulated GPU node last (``GPU_NODE``:
    a ``SimBackend`` with no models whose ``/metrics`` is a dcgm-exporter's)."""
    t = time.time() if now is None else now
    out = [SimBackend(s.name, make_renderer(s.engine, s.variant), s.models, s.profile, seed=i, now=t)
           for i, s in enumerate(specs)]
    if gpu_node:
        out.append(gpu_node_backend(now=t))
    return out


def gpu_node_backend(seed: int = 0, now: float | None = None) -> SimBackend:
    """The simulated GPU node: dcgm-exporter's exposition of two H100s (``sim/engines/dcgm.py``)."""
    t = time.time() if now is None else now
    return SimBackend(GPU_NODE, dcgm.renderer(hostname=GPU_NODE), models=(), seed=seed, now=t)


def is_gpu_node(b: SimBackend) -> bool:
    return b.engine == dcgm.DcgmRenderer.engine


#: the models a uniform fleet's backends serve, in order (``models=4``: all of them)
UNIFORM_MODELS = ("llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "gemma-2-9b")


def uniform(n: int, engine: str = "vllm", variant: str | None = None, now: float | None = None,
            models: int = 1) -> list[SimBackend]:
    """``n`` backends of one engine, each serving the first ``models`` of ``UNIFORM_MODELS``
    (benchmarks, scale tests: a 4-model vLLM body is about 1,200 lines)."""
    if not 1 <= models <= len(UNIFORM_MODELS):
        raise ValueError(f"models: 1 to {len(UNIFORM_MODELS)}")
    t = time.time() if now is None else now
    r = make_renderer(engine, variant)
    served = UNIFORM_MODELS[:models]
    return [SimBackend(f"{engine}-{i:04d}", r, served, Profile(), seed=i, now=t) for i in range(n)]


class IncidentScript:
    """Every ``period`` seconds, end the current incident and start the next one."""

    def __init__(self, fleet: SimFleet, period: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.period = period
        self.clock = clock
        # inference backends only: the GPU node's exporter is not an engine and gets no incident
        names = [n for n, b in fleet.backends.items() if not is_gpu_node(b)]
        pick = {s.engine: s.name for s in DEMO if s.name in names}
        first = names[0] if names else ""
        self.steps: list[tuple[str, str]] = [
            (pick.get("vllm", first), "latency_spike"),
            (pick.get("tgi", first), "queue_buildup"),
            (pick.get("sglang", first), "error_burst"),
            (pick.get("llamacpp", first), "outage"),
            (pick.get("triton", first), "restart"),
        ] if names else []
        self.current: tuple[str, str] | None = None

    async def run(self) -> None:
        if not self.steps:  # nothing to break
            return
        i = 0
        while True:
            await asyncio.sleep(self.period)
            await self.clear()
            name, kind = self.steps[i % len(self.steps)]
            i += 1
            await self.start(name, kind)

    async def start(self, name: str, kind: str) -> None:
        b = self.fleet.backends[name]
        self.current = (name, kind)
        if kind == "latency_spike":  # vllm-a's TTFT p50 ~3.6 s, p99 ~6.5 s: over both TTFT rules' thresholds
            b.incident.latency_factor = 20.0
        elif kind == "queue_buildup":
            b.incident.queue_extra = 150
        elif kind == "error_burst":
            b.incident.error_ratio = 0.3
        elif kind == "outage":
            await self.fleet.set_outage(name, True)
        elif kind == "restart":
            b.restart(self.clock())

    async def clear(self) -> None:
        if self.current is None:
            return
        name, kind = self.current
        if kind == "outage":
            await self.fleet.set_outage(name, False)
        self.fleet.backends[name].incident = Incident()
        self.current = None
