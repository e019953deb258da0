"""Triton Inference Server (+ the TensorRT-LLM backend) → normalised signals.

Sources: ``triton-inference-server/core`` @ ``73aad7c3348d040c7087d57837d75822c488495e``:
``src/metrics.cc`` (family names, types, HELP), ``src/metric_model_reporter.cc/.h`` (labels
``model``, ``version``, optional ``gpu_uuid``, ``reason``; first-response buckets 100/500/2000/5000
ms; latency counters on, histograms off by default), ``src/infer_stats.cc`` (what each counter adds:
``*_duration_us`` grow by whole microseconds on *success only*), ``src/infer_response.cc`` (the
first-response histogram observes integer milliseconds from request start to the first response),
``src/ensemble_scheduler/ensemble_scheduler.cc`` (an ensemble reports its own request once, and
every composing step reports its own as well).
TensorRT-LLM: ``NVIDIA/TensorRT-LLM`` @ ``0d5352f5fc5f39ee2eaed948e67236e64ff68e2a``
``triton_backend/inflight_batcher_llm/src/custom_metrics_reporter/custom_metrics_reporter.cc``
(``nv_trt_llm_request_metrics{request_type=active|max|scheduled|context|waiting}``,
``nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max|free|used|tokens_per|reused|fraction}``,
``nv_llm_input_token_len`` / ``nv_llm_output_token_len`` histograms) and
``triton_backend/inflight_batcher_llm/src/model_instance_state.cc`` (``WaitForStats``:
``waiting = numActiveRequests - numScheduledRequests``, ``fraction = used / max`` blocks).

Mapping (model label ``model``; ``version``, ``gpu_uuid``, ``reason`` … are summed away):

* ``queue_depth`` = ``nv_inference_pending_request_count`` **plus**
  ``nv_trt_llm_request_metrics{request_type="waiting"}``: a decoupled TensorRT-LLM model takes
  requests off Triton's queue at once, so Triton's pending count reads 0 while they wait in the
  TRT-LLM executor;
* ``requests_running`` ← ``nv_trt_llm_request_metrics{request_type="scheduled"}`` (``active`` is
  scheduled + waiting, so it would double count the queue);
* ``kv_cache_usage_ratio`` ← ``kv_cache_block_type="fraction"`` (newer backends), else
  ``used / max`` blocks (max over models);
* ``requests_total`` = ``nv_inference_request_success`` + ``nv_inference_request_failure`` (all
  reasons); ``request_errors_total`` ← ``nv_inference_request_failure``;
* ``e2e_latency_seconds`` and ``queue_time_seconds``: Triton's ``nv_inference_request_duration_us``
  and ``nv_inference_queue_duration_us`` are cumulative microsecond *counters*, so they become
  mean-only histograms (``Source(kind="mean")``, count = ``nv_inference_request_success``, scale
  1e-6): the store derives a per-interval mean from the deltas;
* ``ttft_seconds`` ← ``nv_inference_first_response_histogram_ms`` (scale 1e-3), only where
  Triton runs with ``--metrics-config histogram_latencies=true``. For a decoupled (streaming) model
  the first response is the first token; for a non-decoupled model it is the whole answer;
* ``prompt_tokens_total`` / ``generation_tokens_total`` ← the ``_sum`` of TensorRT-LLM's
  ``nv_llm_input_token_len`` / ``nv_llm_output_token_len`` histograms (no token counters exist).

Unavailable, hence absent (not 0): **every e2e and queue-time percentile** (p50/p95/p99: only the
mean is known; the ``*_summary_us`` families are off by default and are windowed quantiles that
cannot be merged across scrapes or backends), TTFT entirely unless first-response histograms are
on (and then only at 100/500/2000/5000 ms resolution), ``itl_seconds`` (no inter-token metric),
the prefix-cache signals, running/KV/tokens without the TensorRT-LLM backend. Queue time for an
ensemble is the ensemble scheduler's own (near zero): time spent waiting inside the TRT-LLM
executor is not measured by any counter.

**Ensembles.** Triton counts a request on the ensemble *and* on every step it runs. The backend
totals must count it once, on the entry model. ``options: {entry_models: [names]}`` names the
models clients call; without it the default heuristic is TensorRT-LLM's standard model
repository: when ``ensemble`` or ``tensorrt_llm_bls`` is present, ``preprocessing``,
``tensorrt_llm`` and ``postprocessing`` (and ``tensorrt_llm_draft``) are steps. The request,
error and latency families (``ENTRY_ONLY``) of non-entry models are *dropped* before mapping, so
those series are simply absent from the snapshot; every other per-model series (queue, running,
KV cache, tokens — reported only by the ``tensorrt_llm`` step) is kept under its own model name.
Dropping rather than re-keying keeps the rule "sum over models = backend total" true for every
signal without the store needing to know which models are steps.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.conventions import (
    E2E_LATENCY_SECONDS,
    GENERATION_TOKENS_TOTAL,
    KV_CACHE_USAGE_RATIO,
    PROMPT_TOKENS_TOTAL,
    QUEUE_DEPTH,
    QUEUE_TIME_SECONDS,
    REQUEST_ERRORS_TOTAL,
    REQUESTS_RUNNING,
    REQUESTS_TOTAL,
    TTFT_SECONDS,
)
from core.samples import EngineSnapshot
from exporters.base import Options, OptionsError
from exporters.families import MetricFamily
from exporters.mapping import EngineTable, SignalMap, Source

ENGINE = "triton"
MODEL_LABEL = "model"

SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
REQUEST_US = "nv_inference_request_duration_us"
QUEUE_US = "nv_inference_queue_duration_us"
FIRST_RESPONSE_MS = "nv_inference_first_response_histogram_ms"
PENDING = "nv_inference_pending_request_count"
TRT_REQUESTS = "nv_trt_llm_request_metrics"
TRT_KV = "nv_trt_llm_kv_cache_block_metrics"
TRT_INPUT_TOKENS = "nv_llm_input_token_len"
TRT_OUTPUT_TOKENS = "nv_llm_output_token_len"

#: families counted per request: kept for entry models only
ENTRY_ONLY = frozenset({SUCCESS, FAILURE, REQUEST_US, QUEUE_US, FIRST_RESPONSE_MS})

#: TensorRT-LLM standard repository (``all_models/inflight_batcher_llm``)
ENSEMBLE_ENTRIES = frozenset({"ensemble", "tensorrt_llm_bls"})
ENSEMBLE_STEPS = frozenset({"preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_draft"})


def _only(label: str, *values: str) -> dict[str, frozenset[str]]:
    return {label: frozenset(values)}


TABLE = EngineTable(
    engine=ENGINE,
    model_label=MODEL_LABEL,
    signals=(
        SignalMap(
            QUEUE_DEPTH,
            (
                Source(PENDING, "gauge"),
                Source(TRT_REQUESTS, "gauge", where=_only("request_type", "waiting")),
            ),
            combine="sum",
        ),
        SignalMap(REQUESTS_RUNNING, (Source(TRT_REQUESTS, "gauge", where=_only("request_type", "scheduled")),)),
        SignalMap(
            KV_CACHE_USAGE_RATIO,
            (Source(TRT_KV, "gauge", where=_only("kv_cache_block_type", "fraction"), agg="max"),),
        ),
        SignalMap(REQUESTS_TOTAL, (Source(SUCCESS, "counter"), Source(FAILURE, "counter")), combine="sum"),
        SignalMap(REQUEST_ERRORS_TOTAL, (Source(FAILURE, "counter"),)),
        SignalMap(E2E_LATENCY_SECONDS, (Source(REQUEST_US, "mean", scale=1e-6, count_family=SUCCESS),)),
        SignalMap(QUEUE_TIME_SECONDS, (Source(QUEUE_US, "mean", scale=1e-6, count_family=SUCCESS),)),
        SignalMap(TTFT_SECONDS, (Source(FIRST_RESPONSE_MS, "histogram", scale=1e-3),)),
        # no token counters: the per-request token-length histograms' _sum are the totals
        SignalMap(PROMPT_TOKENS_TOTAL, (Source(TRT_INPUT_TOKENS, "hsum"),)),
        SignalMap(GENERATION_TOKENS_TOTAL, (Source(TRT_OUTPUT_TOKENS, "hsum"),)),
    ),
)


def default_entry_models(models: set[str]) -> frozenset[str]:
    """The heuristic used without ``entry_models``: every model, less TRT-LLM ensemble steps."""
    if models & ENSEMBLE_ENTRIES:
        return frozenset(models - ENSEMBLE_STEPS)
    return frozenset(models)


class TritonAdapter:
    engine = ENGINE

    def __init__(self, entry_models: frozenset[str] | None = None, table: EngineTable = TABLE) -> None:
        self.entry_models = entry_models
        self.table = table

    def wanted(self) -> frozenset[str]:
        return self.table.wanted() | {TRT_KV}

    def entries(self, families: Mapping[str, MetricFamily]) -> frozenset[str]:
        if self.entry_models is not None:
            return self.entry_models
        models = {
            s.labels[MODEL_LABEL]
            for name in ENTRY_ONLY | {PENDING}
            if (fam := families.get(name)) is not None
            for s in fam.samples
            if MODEL_LABEL in s.labels
        }
        return default_entry_models(models)

    def normalise(self, families: Mapping[str, MetricFamily]) -> EngineSnapshot:
        entries = self.entries(families)
        view = dict(families)
        for name in ENTRY_ONLY:
            fam = families.get(name)
            if fam is not None:
                view[name] = MetricFamily(
                    fam.name, fam.type, fam.help,
                    [s for s in fam.samples if s.labels.get(MODEL_LABEL, "") in entries],
                )
        snap = self.table.normalise(view)
        for model, ratio in _kv_used_over_max(families.get(TRT_KV)).items():
            snap.gauges.setdefault((KV_CACHE_USAGE_RATIO, model), ratio)
        return snap


def _kv_used_over_max(fam: MetricFamily | None) -> dict[str, float]:
    """``used / max`` KV blocks per model, for backends that predate the ``fraction`` series."""
    if fam is None:
        return {}
    used: dict[str, float] = {}
    total: dict[str, float] = {}
    for s in fam.samples:
        kind = s.labels.get("kv_cache_block_type")
        m = s.labels.get(MODEL_LABEL, "")
        if kind == "used":
            used[m] = used.get(m, 0.0) + s.value
        elif kind == "max":
            total[m] = total.get(m, 0.0) + s.value
    return {m: used[m] / total[m] for m in used if total.get(m, 0.0) > 0}


def adapter(options: Options) -> TritonAdapter:
    """``options: {entry_models: [name, …]}`` (optional); see the module docstring."""
    entry: frozenset[str] | None = None
    for key, value in options.items():
        if key != "entry_models":
            raise OptionsError(str(key), "unknown option; expected one of entry_models")
        if not isinstance(value, list | tuple) or not value:
            raise OptionsError("entry_models", "must be a non-empty list of model names")
        names: list[str] = []
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name:
                raise OptionsError(f"entry_models[{i}]", f"must be a model name, got {name!r}")
            names.append(name)
        entry = frozenset(names)
    return TritonAdapter(entry)
