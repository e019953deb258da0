"""A simulated Triton Inference Server ``/metrics`` body (optionally with TensorRT-LLM).

Names, HELP, labels: ``triton-inference-server/core`` @ ``73aad7c3348d040c7087d57837d75822c488495e``
(``src/metrics.cc``, ``src/metric_model_reporter.cc``: labels are a ``std::map``, so they print
sorted — ``model``, ``reason``, ``version``; failure counters exist for all four reasons from model
load on; first-response buckets 100/500/2000/5000 ms) and ``NVIDIA/TensorRT-LLM`` @
``0d5352f5fc5f39ee2eaed948e67236e64ff68e2a``
(``triton_backend/inflight_batcher_llm/src/custom_metrics_reporter/custom_metrics_reporter.cc``).
Rendering as prometheus-cpp does (``jupp0r/prometheus-cpp`` @
``458deac15d331ca4ec993d3b88ac8f8f727aae05``, ``core/src/text_serializer.cc``, ``registry.cc``):
counters, then gauges, then histograms, then summaries, each kind in registration order (Triton's
own families first, then the backend's custom ones); empty families skipped; values with 16
significant digits (``%.16g``); ``_count`` and ``_sum`` before the buckets; ``le`` last; no blank
lines. prometheus-cpp prints a family's series in hash order; here they follow the model order.

Values: a µs counter is the state's histogram sum × 1e6 rounded to whole µs (Triton adds whole
µs per request); the first-response histogram is the TTFT histogram in ms.

Variants (``+``-separated flags):

* ``None``: one decoupled TensorRT-LLM model per simulated model (named after it,
  ``version="1"``) served directly, with ``--metrics-config histogram_latencies=true``: Triton's
  pending count is 0 (the executor takes requests at once), the queue is in
  ``nv_trt_llm_request_metrics{request_type="waiting"}``, plus the backend's KV-cache, running and
  token-length families;
* ``"plain"``: Triton defaults for a non-LLM backend (latency counters on, histograms off, no
  TensorRT-LLM families); Triton's pending count carries the queue. ``"plain+histograms"`` adds
  ``nv_inference_first_response_histogram_ms``;
* ``"trtllm"``: TensorRT-LLM's standard ensemble repository — ``ensemble``, ``preprocessing``,
  ``tensorrt_llm``, ``postprocessing`` — printing the *sum* of the simulated models' state (the
  simulated model names do not appear: the repository's names do). Every step counts every
  request; an error fails ``tensorrt_llm`` and ``ensemble``. Triton's pending count is 0 for every
  model, the queue is in ``nv_trt_llm_request_metrics{request_type="waiting"}``; the first-response
  histogram is on for the ensemble and ``tensorrt_llm`` (decoupled: first response = first token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from sim.state import HistState, ModelState, SimBackend

FIRST_RESPONSE_MS = (100.0, 500.0, 2000.0, 5000.0)
TOKEN_BUCKETS = (10.0, 50.0, 100.0, 500.0, 1000.0)
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")
ENSEMBLE_MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing")
KV_MAX_BLOCKS = 8192
TOKENS_PER_BLOCK = 64

LAYOUTS = {
    "ttft": tuple(ms / 1000.0 for ms in FIRST_RESPONSE_MS),
    "e2e": (),
    "queue_time": (),
    "inference_time": (),
    "prompt_tokens": TOKEN_BUCKETS,
    "generation_tokens": TOKEN_BUCKETS,
}

HELP = {
    "nv_inference_request_success": "Number of successful inference requests, all batch sizes",
    "nv_inference_request_failure": "Number of failed inference requests, all batch sizes",
    "nv_inference_count": "Number of inferences performed (does not include cached requests)",
    "nv_inference_exec_count": "Number of model executions performed (does not include cached requests)",
    "nv_inference_request_duration_us": "Cumulative inference request duration in microseconds (includes cached requests)",
    "nv_inference_queue_duration_us": "Cumulative inference queuing duration in microseconds (includes cached requests)",
    "nv_inference_compute_input_duration_us": "Cumulative compute input duration in microseconds (does not include cached requests)",
    "nv_inference_compute_infer_duration_us": "Cumulative compute inference duration in microseconds (does not include cached requests)",
    "nv_inference_compute_output_duration_us": "Cumulative inference compute output duration in microseconds (does not include cached requests)",
    "nv_inference_pending_request_count": "Instantaneous number of pending requests awaiting execution per-model.",
    "nv_model_load_duration_secs": "Model load time in seconds",
    "nv_pinned_memory_pool_total_bytes": "Pinned memory pool total memory size, in bytes",
    "nv_pinned_memory_pool_used_bytes": "Pinned memory pool used memory size, in bytes",
    "nv_inference_first_response_histogram_ms": "Duration from request to first response in milliseconds",
    "nv_trt_llm_request_metrics": "TRT LLM request metrics",
    "nv_trt_llm_runtime_memory_metrics": "TRT LLM runtime memory metrics",
    "nv_trt_llm_kv_cache_block_metrics": "TRT LLM KV cache block metrics",
    "nv_trt_llm_disaggregated_serving_metrics": "TRT LLM disaggregated serving metrics",
    "nv_trt_llm_inflight_batcher_metrics": "TRT LLM inflight_batcher-specific metrics",
    "nv_trt_llm_general_metrics": "General TRT LLM metrics",
    "nv_llm_output_token_len": "TRT LLM response metrics",
    "nv_llm_input_token_len": "TRT LLM response metrics",
}


def cpp_double(x: float) -> str:
    """``std::ostream << double`` at precision 16 (prometheus-cpp's ``WriteValue``)."""
    if x != x:
        return "Nan"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    return format(x, ".16g")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _merge(hists: list[HistState]) -> HistState:
    out = HistState(hists[0].bounds)
    for h in hists:
        for i, c in enumerate(h.buckets):
            out.buckets[i] += c
        out.sum += h.sum
        out.count += h.count
    return out


@dataclass
class _Model:
    """What one Triton model reports."""

    name: str
    success: int
    failure: int
    request_us: float
    queue_us: float
    infer_us: float
    pending: int
    ttft: HistState | None
    load_secs: float


def _us(seconds: float) -> float:
    return float(round(seconds * 1e6))


class TritonRenderer:
    engine = "triton"
    content_type = "text/plain; charset=utf-8"

    def __init__(self, variant: str | None = None) -> None:
        flags = set(filter(None, (variant or "").split("+")))
        unknown = flags - {"trtllm", "plain", "histograms"}
        if unknown or {"trtllm", "plain"} <= flags:
            raise ValueError(f"bad triton variant {variant!r}; expected None, 'plain', 'plain+histograms', 'trtllm'")
        self.trtllm = "trtllm" in flags
        self.plain = "plain" in flags
        self.histograms = "histograms" in flags or not self.plain
        self.layouts = LAYOUTS

    # -- per-model figures ------------------------------------------------------------------------
    def _plain(self, st: ModelState) -> _Model:
        ok = st.requests - st.errors
        return _Model(
            st.model, ok, st.errors, _us(st.hist["e2e"].sum), _us(st.hist["queue_time"].sum),
            _us(st.hist["inference_time"].sum), st.waiting if self.plain else 0,
            st.hist["ttft"] if self.histograms else None, 12.5,
        )

    def _ensemble(self, states: list[ModelState]) -> list[_Model]:
        ok = sum(st.requests - st.errors for st in states)
        err = sum(st.errors for st in states)
        e2e = _us(sum(st.hist["e2e"].sum for st in states))
        queue = _us(sum(st.hist["queue_time"].sum for st in states))
        infer = _us(sum(st.hist["inference_time"].sum for st in states))
        ttft = _merge([st.hist["ttft"] for st in states])
        pre = post = float(ok + err) * 850.0  # tokenizer steps: ~0.85 ms each
        return [
            _Model("ensemble", ok, err, e2e, float(ok * 2), infer, 0, ttft, 0.001),
            _Model("preprocessing", ok + err, 0, pre, float((ok + err) * 40), pre, 0, None, 1.8),
            _Model("tensorrt_llm", ok, err, e2e - 2 * pre, queue, infer, 0, ttft, 41.0),
            _Model("postprocessing", ok, 0, post, float(ok * 40), post, 0, None, 1.7),
        ]

    # -- rendering -------------------------------------------------------------------------------
    def render(self, backend: SimBackend) -> bytes:
        states = list(backend.models.values())
        models = self._ensemble(states) if self.trtllm else [self._plain(st) for st in states]
        out: list[str] = []

        def family(name: str, kind: str, lines: list[str]) -> None:
            if not lines:
                return
            out.append(f"# HELP {name} {HELP[name]}\n# TYPE {name} {kind}\n")
            out.extend(lines)

        def per_model(name: str, value: str | Callable[[_Model], float]) -> list[str]:
            get = attrgetter(value) if isinstance(value, str) else value
            return [f"{name}{_labels(model=m.name, version='1')} {cpp_double(get(m))}\n" for m in models]

        # counters (Triton's own, registration order of metrics.cc)
        family("nv_inference_request_success", "counter", per_model("nv_inference_request_success", "success"))
        family("nv_inference_request_failure", "counter", [
            f"nv_inference_request_failure{_labels(model=m.name, reason=r, version='1')} "
            f"{cpp_double(m.failure if r == 'BACKEND' else 0.0)}\n"
            for m in models for r in FAILURE_REASONS
        ])
        family("nv_inference_count", "counter", per_model("nv_inference_count", "success"))
        family("nv_inference_exec_count", "counter", per_model("nv_inference_exec_count", "success"))
        family("nv_inference_request_duration_us", "counter", per_model("nv_inference_request_duration_us", "request_us"))
        family("nv_inference_queue_duration_us", "counter", per_model("nv_inference_queue_duration_us", "queue_us"))
        family("nv_inference_compute_input_duration_us", "counter",
               per_model("nv_inference_compute_input_duration_us", lambda m: float(m.success * 15)))
        family("nv_inference_compute_infer_duration_us", "counter",
               per_model("nv_inference_compute_infer_duration_us", "infer_us"))
        family("nv_inference_compute_output_duration_us", "counter",
               per_model("nv_inference_compute_output_duration_us", lambda m: float(m.success * 10)))
        trt: list[ModelState] = (
            [] if self.plain else [_merge_state(states)] if self.trtllm else states
        )
        # custom counter family registered by the backend
        family("nv_trt_llm_disaggregated_serving_metrics", "counter", [
            f"nv_trt_llm_disaggregated_serving_metrics{_labels(disaggregated_serving_type=t, model=st.model, version='1')} 0\n"
            for st in trt for t in ("kv_cache_transfer_ms", "request_count")
        ])

        # gauges
        family("nv_inference_pending_request_count", "gauge", per_model("nv_inference_pending_request_count", "pending"))
        family("nv_model_load_duration_secs", "gauge", per_model("nv_model_load_duration_secs", "load_secs"))
        family("nv_pinned_memory_pool_total_bytes", "gauge", ["nv_pinned_memory_pool_total_bytes 268435456\n"])
        family("nv_pinned_memory_pool_used_bytes", "gauge", ["nv_pinned_memory_pool_used_bytes 0\n"])
        if trt:
            self._trtllm_gauges(family, trt)

        # histograms
        if self.histograms:
            lines: list[str] = []
            for m in models:
                if m.ttft is None:
                    continue
                lab = _labels(model=m.name, version="1")
                lines.append(f"nv_inference_first_response_histogram_ms_count{lab} {m.ttft.count}\n")
                lines.append(f"nv_inference_first_response_histogram_ms_sum{lab} {cpp_double(m.ttft.sum * 1000.0)}\n")
                for ms, c in zip(FIRST_RESPONSE_MS, m.ttft.cumulative(), strict=False):
                    le = _labels(model=m.name, version="1")[:-1] + f',le="{cpp_double(ms)}"}}'
                    lines.append(f"nv_inference_first_response_histogram_ms_bucket{le} {c}\n")
                lines.append(f"nv_inference_first_response_histogram_ms_bucket{lab[:-1]},le=\"+Inf\"}} {m.ttft.count}\n")
            family("nv_inference_first_response_histogram_ms", "histogram", lines)
        for name, kind, sub in (
            ("nv_llm_output_token_len", "generation_tokens", "total_output_tokens"),
            ("nv_llm_input_token_len", "prompt_tokens", "total_input_tokens"),
        ):
            lines = []
            for st in trt:
                h = st.hist[kind]
                lab = _labels(model=st.model, response_metric_type=sub, version="1")
                lines += [f"{name}_count{lab} {h.count}\n", f"{name}_sum{lab} {cpp_double(h.sum)}\n"]
                for b, c in zip(TOKEN_BUCKETS, h.cumulative(), strict=False):
                    lines.append(f'{name}_bucket{lab[:-1]},le="{cpp_double(b)}"}} {c}\n')
                lines.append(f'{name}_bucket{lab[:-1]},le="+Inf"}} {h.count}\n')
            family(name, "histogram", lines)
        return "".join(out).encode()

    @staticmethod
    def _trtllm_gauges(family: Callable[[str, str, list[str]], None], states: list[ModelState]) -> None:
        lines: dict[str, list[str]] = {}

        def group(name: str, category: str, values: dict[str, float]) -> None:
            lines.setdefault(name, []).extend(
                f"{name}{_labels(**{category: k}, model=trt.model, version='1')} {cpp_double(v)}\n"
                for k, v in values.items()
            )

        for trt in states:
            _trtllm_groups(group, trt)
        for name, body in lines.items():
            family(name, "gauge", body)


def _trtllm_groups(group: Callable[[str, str, dict[str, float]], None], trt: ModelState) -> None:
    """The backend's gauge groups for one TensorRT-LLM model, in ``InitializeReporter`` order."""
    used = round(trt.kv_cache_usage * KV_MAX_BLOCKS)
    group("nv_trt_llm_request_metrics", "request_type", {
        "active": trt.running + trt.waiting, "max": 256.0, "scheduled": trt.running,
        "context": min(trt.running, 1), "waiting": trt.waiting,
    })
    group("nv_trt_llm_runtime_memory_metrics", "memory_type", {"cpu": 0.0, "gpu": 1.6e10, "pinned": 3.2e7})
    group("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", {
        "max": KV_MAX_BLOCKS, "free": KV_MAX_BLOCKS - used, "used": used, "tokens_per": TOKENS_PER_BLOCK,
        "reused": 0.0, "fraction": used / KV_MAX_BLOCKS,
    })
    group("nv_trt_llm_inflight_batcher_metrics", "inflight_batcher_specific_metric", {
        "total_context_tokens": 0.0, "generation_requests": trt.running, "micro_batch_id": 0.0,
        "paused_requests": 0.0,
    })
    group("nv_trt_llm_general_metrics", "general_type", {"timestamp": 1.7e15, "iteration_counter": 12345.0})


def _merge_state(states: list[ModelState]) -> ModelState:
    """All simulated models as the one ``tensorrt_llm`` engine of an ensemble repository."""
    merged = ModelState("tensorrt_llm", {k: states[0].hist[k].bounds for k in states[0].hist})
    for kind in merged.hist:
        merged.hist[kind] = _merge([st.hist[kind] for st in states])
    merged.waiting = sum(st.waiting for st in states)
    merged.running = sum(st.running for st in states)
    merged.kv_cache_usage = max(st.kv_cache_usage for st in states)
    return merged


def renderer(variant: str | None = None) -> TritonRenderer:
    return TritonRenderer(variant)
