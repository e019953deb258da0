"""The simulated workload: per backend and model, cumulative state an engine would report.

Pure and clock-driven: ``SimBackend.advance(now)`` turns the time since the last call into
finished requests drawn from seeded distributions, and records each observation twice — into the
engine's own histogram layouts (what the renderer in ``sim/engines/<engine>.py`` prints) and into
a bounded ring of raw observations (the *truth* tests compare against).

Observation kinds a renderer may ask buckets for (``EngineRenderer.layouts`` keys):
``ttft``, ``itl``, ``e2e``, ``queue_time``, ``prefill_time``, ``decode_time``, ``inference_time``
(seconds) and ``prompt_tokens``, ``generation_tokens`` (tokens per request).
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

OBSERVATIONS = (
    "ttft", "itl", "e2e", "queue_time", "prefill_time", "decode_time", "inference_time",
    "prompt_tokens", "generation_tokens",
)


class HistState:
    """Cumulative histogram over finite ``bounds`` (+Inf implicit)."""

    __slots__ = ("bounds", "buckets", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)  # non-cumulative; last is (+max, +Inf]
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.buckets[bisect.bisect_left(self.bounds, value)] += n
        self.sum += value * n
        self.count += n

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.buckets:
            running += c
            out.append(running)
        return out


@dataclass
class Profile:
    """What a simulated model does when healthy. Latencies in seconds, rates per second."""

    request_rate: float = 2.0
    ttft: float = 0.25  # median
    itl: float = 0.03  # median gap between output tokens
    queue_time: float = 0.02
    prompt_tokens: int = 400
    generation_tokens: int = 120
    error_ratio: float = 0.0
    queue_depth: int = 2
    running: int = 4
    kv_cache_usage: float = 0.35
    prefix_hit_ratio: float = 0.4
    spread: float = 0.25  # lognormal sigma
    # the OpenAI-compatible streaming endpoints (sim/stream.py): one token per chunk
    stream_ttft: float = 0.2  # seconds from the request to the first content chunk
    stream_token_interval: float = 0.02  # seconds between content chunks


@dataclass
class Incident:
    """Switches flipped by tests and the demo."""

    latency_factor: float = 1.0
    queue_extra: int = 0
    error_ratio: float | None = None
    outage: bool = False  # the server refuses connections
    http_status: int | None = None  # answer /metrics with this status (e.g. 500)
    body: bytes | None = None  # answer /metrics with this body (HTML, truncated text …)
    truncate: bool = False  # announce the full length, send half, close
    delay: float = 0.0  # seconds to wait before answering
    # broken streams (sim/stream.py): "cut" (close without [DONE]), "malformed" (a non-JSON data
    # line), "http500", "http429", "empty" ([DONE] without content), "stall" (stop sending, keep
    # the connection open); cut/malformed/stall strike after `stream_fault_after` content chunks
    stream_fault: str | None = None
    stream_fault_after: int = 2


@dataclass
class ModelState:
    model: str
    layouts: Mapping[str, tuple[float, ...]]
    finished: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0, "abort": 0, "error": 0})
    prompt_tokens: int = 0
    generation_tokens: int = 0
    prefix_queries: int = 0
    prefix_hits: int = 0
    waiting: int = 0
    running: int = 0
    kv_cache_usage: float = 0.0
    hist: dict[str, HistState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hist = {k: HistState(v) for k, v in self.layouts.items()}

    @property
    def requests(self) -> int:
        return sum(self.finished.values())

    @property
    def errors(self) -> int:
        return self.finished["error"]


class EngineRenderer(Protocol):
    """Prints a ``SimBackend``'s state as the engine's own ``/metrics`` body."""

    engine: str
    content_type: str
    #: observation kind -> finite bucket bounds, in seconds (or tokens), as the engine defines them
    layouts: Mapping[str, tuple[float, ...]]

    def render(self, backend: SimBackend) -> bytes: ...


TRUTH_LIMIT = 50_000
MAX_ADVANCE = 3600.0  # seconds of workload one ``advance`` simulates at most


class SimBackend:
    """One simulated inference server: models, workload, incidents, truth."""

    def __init__(
        self,
        name: str,
        renderer: EngineRenderer,
        models: tuple[str, ...] = ("llama-3.1-8b",),
        profile: Profile | None = None,
        seed: int = 0,
        now: float = 0.0,
    ) -> None:
        self.name = name
        self.renderer = renderer
        self.engine = renderer.engine
        self.model_names = models
        self.profile = profile or Profile()
        self.incident = Incident()
        self.seed = seed
        self._rng = random.Random(seed)
        self.restarts = 0
        self.truth: dict[tuple[str, str], deque[tuple[float, float, int]]] = {}
        self._reset_state(now)

    # -- lifecycle ---------------------------------------------------------------------------
    def _reset_state(self, now: float) -> None:
        self.started_at = now
        self.last = now
        self._carry = {m: 0.0 for m in self.model_names}
        self.models = {m: ModelState(m, self.renderer.layouts) for m in self.model_names}
        self._set_gauges()

    def restart(self, now: float) -> None:
        """Counter reset: the process restarted and every cumulative value starts from zero."""
        self.restarts += 1
        self._reset_state(now)

    def _set_gauges(self) -> None:
        p, inc = self.profile, self.incident
        for st in self.models.values():
            st.waiting = p.queue_depth + inc.queue_extra
            st.running = p.running
            st.kv_cache_usage = min(1.0, p.kv_cache_usage + (0.5 if inc.queue_extra else 0.0))

    # -- workload ------------------------------------------------------------------------------
    def _draw(self, median: float) -> float:
        return median * math.exp(self._rng.gauss(0.0, self.profile.spread))

    def advance(self, now: float) -> None:
        dt = now - self.last
        if dt <= 0:
            self._set_gauges()  # incident switches show at once, even with no time elapsed
            return
        if dt > MAX_ADVANCE:  # a clock jump (or a wrong ``now``) must not simulate years of traffic
            dt = MAX_ADVANCE
        self.last = now
        p, inc = self.profile, self.incident
        err = p.error_ratio if inc.error_ratio is None else inc.error_ratio
        for m, st in self.models.items():
            self._carry[m] += p.request_rate * dt
            n = int(self._carry[m])
            self._carry[m] -= n
            for _ in range(n):
                self._one_request(st, now, err, inc.latency_factor)
        self._set_gauges()

    def _one_request(self, st: ModelState, now: float, err: float, factor: float) -> None:
        p = self.profile
        prompt = max(1, int(self._draw(p.prompt_tokens)))
        st.prompt_tokens += prompt
        q = p.prefix_hit_ratio
        st.prefix_queries += prompt
        st.prefix_hits += int(prompt * q)
        if self._rng.random() < err:
            st.finished["error"] += 1
            return
        gen = max(2, int(self._draw(p.generation_tokens)))
        queue_time = self._draw(p.queue_time) * factor
        ttft = self._draw(p.ttft) * factor
        itl = self._draw(p.itl) * factor
        decode = itl * (gen - 1)
        prefill = max(ttft - queue_time, 0.0)
        e2e = ttft + decode
        st.generation_tokens += gen
        st.finished["length" if gen >= 2 * p.generation_tokens else "stop"] += 1
        obs = {
            "ttft": (ttft, 1), "itl": (itl, gen - 1), "e2e": (e2e, 1), "queue_time": (queue_time, 1),
            "prefill_time": (prefill, 1), "decode_time": (decode, 1), "inference_time": (prefill + decode, 1),
            "prompt_tokens": (float(prompt), 1), "generation_tokens": (float(gen), 1),
        }
        for kind, (value, weight) in obs.items():
            h = st.hist.get(kind)
            if h is not None:
                h.observe(value, weight)
            ring = self.truth.get((st.model, kind))
            if ring is None:
                ring = self.truth[(st.model, kind)] = deque(maxlen=TRUTH_LIMIT)
            ring.append((now, value, weight))

    # -- what a test compares against ------------------------------------------------------------
    def true_quantile(self, kind: str, q: float, since: float = -math.inf, until: float = math.inf,
                      model: str | None = None) -> float | None:
        """Exact weighted quantile of the raw observations with ``since < ts <= until``."""
        vals: list[tuple[float, int]] = []
        for (m, k), ring in self.truth.items():
            if k != kind or (model is not None and m != model):
                continue
            vals.extend((v, w) for ts, v, w in ring if since < ts <= until)
        if not vals:
            return None
        vals.sort()
        total = sum(w for _, w in vals)
        rank, acc = q * total, 0
        for v, w in vals:
            acc += w
            if acc >= rank:
                return v
        return vals[-1][0]

    def render(self, now: float) -> bytes:
        self.advance(now)
        return self.renderer.render(self)
