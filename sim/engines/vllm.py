"""A simulated vLLM ``/metrics`` body, printed the way vLLM's Python process prints it.

Families, HELP, types, labels and bucket edges follow ``vllm-project/vllm``
``vllm/v1/metrics/loggers.py`` @ ``005a810bc40faa25b8870fbc8559c3462581eee3`` (``PrometheusStatLogger``,
registration order kept) plus ``vllm:inter_token_latency_seconds`` and the "DEPRECATED" HELP on
``vllm:time_per_output_token_seconds`` from the same file on the 0.11 development line. The set of
families of the default variant is that of the real v0.10.2 capture quoted in ``ENGINES.md``: old
*and* new KV-cache / prefix-cache names, TPOT *and* ITL, ``_created`` on counters and histograms,
no ``time_per_prefill_token_request_seconds``.

Variants:

* ``None`` / ``"v1"``: 0.10.2-style, as above.
* ``"v0"``: only the older names (``gpu_cache_usage_perc``, ``gpu_prefix_cache_*``,
  ``time_per_output_token_seconds``, with their pre-deprecation HELP), as a 0.8/0.9 server prints.

Rendering is prometheus_client's text format 0.0.4 (``generate_latest``): labels sorted by name
(``engine`` < ``le`` < ``model_name``), ``floatToGoString`` numbers (``1.0``, ``1.6098419e+07``),
``_created`` samples moved into a separate ``<name>_created`` *gauge* family after their family,
default collectors first (``python_gc_*``, ``python_info``, ``process_*``), then the vLLM
families, ``vllm:cache_config_info``, and the prometheus-fastapi-instrumentator ``http_*`` families.

Simplifications, stated: ``finished_reason`` takes the values of ``SimBackend`` state (``stop``,
``length``, ``abort``, ``error``: the 0.11-line ``FinishReason`` without ``repetition``; a real
0.10.2 has no ``error``); the sim has one engine (``engine="0"``) and prints each simulated model
with its own ``model_name`` (a real server serves one); ``iteration_tokens_total``,
``request_params_*`` and ``request_max_num_generation_tokens`` are plausible derivations, not
measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.utils import floatToGoString

from sim.state import HistState, ModelState, SimBackend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_MODEL_LEN = 40960  # Qwen/Qwen3-0.6B, the model of the v0.10.2 capture


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """``vllm.v1.metrics.loggers.build_1_2_5_buckets``: 1, 2, 5, 10, 20, 50, … up to ``max_value``."""
    out: list[int] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > max_value:
                return out
            out.append(value)
        exponent += 1


TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
TPOT_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
)
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)
TOKEN_BUCKETS = tuple(float(b) for b in build_1_2_5_buckets(MAX_MODEL_LEN))
ITERATION_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)
HTTP_HIGHR_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
)

LAYOUTS: Mapping[str, tuple[float, ...]] = {
    "ttft": TTFT_BUCKETS,
    "itl": TPOT_BUCKETS,
    "e2e": REQUEST_LATENCY_BUCKETS,
    "queue_time": REQUEST_LATENCY_BUCKETS,
    "inference_time": REQUEST_LATENCY_BUCKETS,
    "prefill_time": REQUEST_LATENCY_BUCKETS,
    "decode_time": REQUEST_LATENCY_BUCKETS,
    "prompt_tokens": TOKEN_BUCKETS,
    "generation_tokens": TOKEN_BUCKETS,
}

Labels = dict[str, str]
SampleT = tuple[str, Labels, float]


# -- prometheus_client text format 0.0.4 ------------------------------------------------------------
def _esc_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _line(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(
            '{}="{}"'.format(k, v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\""))
            for k, v in sorted(labels.items())
        )
        return f"{name}{{{inner}}} {floatToGoString(value)}\n"
    return f"{name} {floatToGoString(value)}\n"


def family(out: list[str], name: str, typ: str, doc: str, samples: Iterable[SampleT]) -> None:
    """Append one family as ``generate_latest`` does, ``_created`` split off into a gauge family."""
    mname = name + "_total" if typ == "counter" else name
    out.append(f"# HELP {mname} {_esc_help(doc)}\n# TYPE {mname} {typ}\n")
    created: list[str] = []
    for sname, labels, value in samples:
        (created if sname == name + "_created" else out).append(_line(sname, labels, value))
    if created:
        out.append(f"# HELP {name}_created {_esc_help(doc)}\n# TYPE {name}_created gauge\n")
        out.extend(created)


def counter_samples(name: str, labels: Labels, value: float, created: float | None) -> list[SampleT]:
    out: list[SampleT] = [(name + "_total", labels, value)]
    if created is not None:
        out.append((name + "_created", labels, created))
    return out


def histogram_samples(
    name: str, labels: Labels, bounds: Iterable[float], cumulative: list[int] | list[float],
    total: float, created: float | None,
) -> list[SampleT]:
    """``_bucket`` per bound (+Inf last), ``_count``, ``_sum``, ``_created``: Histogram._child_samples order."""
    out: list[SampleT] = []
    for b, n in zip((*bounds, math.inf), cumulative, strict=True):
        out.append((name + "_bucket", {**labels, "le": floatToGoString(b)}, float(n)))
    out.append((name + "_count", labels, float(cumulative[-1])))
    out.append((name + "_sum", labels, total))
    if created is not None:
        out.append((name + "_created", labels, created))
    return out


def _single_bucket(bounds: tuple[float, ...], value: float, n: int) -> list[int]:
    """Cumulative counts for ``n`` observations all equal to ``value``."""
    h = HistState(bounds)
    if n:
        h.observe(value, n)
    return h.cumulative()


# -- the default collectors (fixed, plausible values) -----------------------------------------------
def _default_collectors(out: list[str], started_at: float, uptime: float) -> None:
    family(out, "python_gc_objects_collected", "counter", "Objects collected during gc", [
        ("python_gc_objects_collected_total", {"generation": g}, v)
        for g, v in (("0", 16842.0), ("1", 4021.0), ("2", 1187.0))
    ])
    family(out, "python_gc_objects_uncollectable", "counter", "Uncollectable objects found during GC", [
        ("python_gc_objects_uncollectable_total", {"generation": g}, 0.0) for g in ("0", "1", "2")
    ])
    family(out, "python_gc_collections", "counter", "Number of times this generation was collected", [
        ("python_gc_collections_total", {"generation": g}, v)
        for g, v in (("0", 1531.0), ("1", 139.0), ("2", 9.0))
    ])
    family(out, "python_info", "gauge", "Python platform information", [
        ("python_info", {"implementation": "CPython", "major": "3", "minor": "12", "patchlevel": "11",
                         "version": "3.12.11"}, 1.0),
    ])
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
           [("process_virtual_memory_bytes", {}, 4.4367540224e10)])
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           [("process_resident_memory_bytes", {}, 1.609841664e09)])
    family(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
           [("process_start_time_seconds", {}, round(started_at, 2))])
    family(out, "process_cpu_seconds", "counter", "Total user and system CPU time spent in seconds.",
           [("process_cpu_seconds_total", {}, round(12.5 + 0.31 * uptime, 2))])
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.", [("process_open_fds", {}, 71.0)])
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
           [("process_max_fds", {}, 1048576.0)])


def _http_families(out: list[str], backend: SimBackend, created: float) -> None:
    """prometheus-fastapi-instrumentator ``metrics.default()``: what vLLM's API server adds."""
    requests = sum(st.requests for st in backend.models.values())
    errors = sum(st.errors for st in backend.models.values())
    scrapes = 1.0 + max(0.0, backend.last - backend.started_at) // 15
    chat, metrics = "/v1/chat/completions", "/metrics"
    family(out, "http_requests", "counter", "Total number of requests by method, status and handler.", [
        *counter_samples("http_requests", {"handler": chat, "method": "POST", "status": "2xx"},
                         float(requests - errors), created),
        *counter_samples("http_requests", {"handler": chat, "method": "POST", "status": "5xx"}, float(errors), created),
        *counter_samples("http_requests", {"handler": metrics, "method": "GET", "status": "2xx"}, scrapes, created),
    ])
    for name, doc, per_req in (
        ("http_request_size_bytes", "Content length of incoming requests by handler. Only value of header is "
         "respected. Otherwise ignored. No percentile calculated. ", 1650.0),
        ("http_response_size_bytes", "Content length of outgoing responses by handler. Only value of header is "
         "respected. Otherwise ignored. No percentile calculated. ", 2410.0),
    ):
        family(out, name, "summary", doc, [
            (name + "_count", {"handler": chat}, float(requests)),
            (name + "_sum", {"handler": chat}, per_req * requests),
            (name + "_created", {"handler": chat}, created),
            (name + "_count", {"handler": metrics}, scrapes),
            (name + "_sum", {"handler": metrics}, 0.0 if name == "http_request_size_bytes" else 11873.0 * scrapes),
            (name + "_created", {"handler": metrics}, created),
        ])
    e2e_sum = sum(st.hist["e2e"].sum for st in backend.models.values())
    e2e = [sum(col) for col in zip(*(st.hist["e2e"].cumulative() for st in backend.models.values()), strict=True)]
    mean = e2e_sum / e2e[-1] if e2e and e2e[-1] else 0.0
    n = int(e2e[-1]) if e2e else 0
    family(out, "http_request_duration_highr_seconds", "histogram",
           "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
           histogram_samples("http_request_duration_highr_seconds", {}, HTTP_HIGHR_BUCKETS,
                             _single_bucket(HTTP_HIGHR_BUCKETS, mean, n), e2e_sum, created))
    family(out, "http_request_duration_seconds", "histogram",
           "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
           histogram_samples("http_request_duration_seconds", {"handler": chat, "method": "POST"}, (0.1, 0.5, 1.0),
                             _single_bucket((0.1, 0.5, 1.0), mean, n), e2e_sum, created))


# -- the vLLM families ------------------------------------------------------------------------------
class VllmRenderer:
    engine = "vllm"
    content_type = CONTENT_TYPE

    def __init__(self, variant: str | None = None) -> None:
        if variant not in (None, "v1", "v0"):
            raise ValueError(f"unknown vllm variant {variant!r}; expected None, 'v1' or 'v0'")
        self.variant = variant or "v1"
        self.layouts = LAYOUTS

    def render(self, backend: SimBackend) -> bytes:
        out: list[str] = []
        created = backend.started_at
        _default_collectors(out, backend.started_at, backend.last - backend.started_at)
        states = list(backend.models.values())
        new = self.variant == "v1"

        def labels(st: ModelState) -> Labels:
            return {"model_name": st.model, "engine": "0"}

        def gauge(name: str, doc: str, value_of) -> None:  # noqa: ANN001
            family(out, name, "gauge", doc, [(name, labels(st), float(value_of(st))) for st in states])

        def counter(name: str, doc: str, value_of) -> None:  # noqa: ANN001
            family(out, name, "counter", doc,
                   [s for st in states for s in counter_samples(name, labels(st), float(value_of(st)), created)])

        def histogram(name: str, doc: str, kind: str) -> None:
            family(out, name, "histogram", doc, [
                s for st in states
                for s in histogram_samples(name, labels(st), st.hist[kind].bounds, st.hist[kind].cumulative(),
                                           st.hist[kind].sum, created)
            ])

        def derived(name: str, doc: str, bounds: tuple[float, ...], fn) -> None:  # noqa: ANN001
            samples: list[SampleT] = []
            for st in states:
                value, n = fn(st)
                samples += histogram_samples(name, labels(st), bounds, _single_bucket(bounds, value, n),
                                             value * n, created)
            family(out, name, "histogram", doc, samples)

        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", lambda st: st.running)
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", lambda st: st.waiting)
        if new:
            gauge("vllm:gpu_cache_usage_perc",
                  "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
                  lambda st: st.kv_cache_usage)
            counter("vllm:gpu_prefix_cache_queries",
                    "GPU prefix cache queries, in terms of number of queriedtokens. "
                    "DEPRECATED: Use vllm:prefix_cache_queries instead.", lambda st: st.prefix_queries)
            counter("vllm:gpu_prefix_cache_hits",
                    "GPU prefix cache hits, in terms of number of cached tokens. "
                    "DEPRECATED: Use vllm:prefix_cache_hits instead.", lambda st: st.prefix_hits)
            gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                  lambda st: st.kv_cache_usage)
            counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                    lambda st: st.prefix_queries)
            counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                    lambda st: st.prefix_hits)
        else:
            gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.",
                  lambda st: st.kv_cache_usage)
            counter("vllm:gpu_prefix_cache_queries",
                    "GPU prefix cache queries, in terms of number of queried tokens.", lambda st: st.prefix_queries)
            counter("vllm:gpu_prefix_cache_hits",
                    "GPU prefix cache hits, in terms of number of cached tokens.", lambda st: st.prefix_hits)
        counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", lambda st: 0)
        counter("vllm:prompt_tokens", "Number of prefill tokens processed.", lambda st: st.prompt_tokens)
        counter("vllm:generation_tokens", "Number of generation tokens processed.", lambda st: st.generation_tokens)
        family(out, "vllm:request_success", "counter", "Count of successfully processed requests.", [
            s for reason in ("stop", "length", "abort", "error") for st in states
            for s in counter_samples("vllm:request_success", {**labels(st), "finished_reason": reason},
                                     float(st.finished.get(reason, 0)), created)
        ])
        histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "prompt_tokens")
        histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", "generation_tokens")
        derived("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                tuple(float(b) for b in ITERATION_BUCKETS),
                lambda st: ((st.prompt_tokens + st.generation_tokens) / max(1, st.generation_tokens),
                            st.generation_tokens))
        derived("vllm:request_max_num_generation_tokens",
                "Histogram of maximum number of requested generation tokens.", TOKEN_BUCKETS,
                lambda st: (2048.0, st.hist["generation_tokens"].count))
        derived("vllm:request_params_n", "Histogram of the n request parameter.",
                tuple(float(b) for b in PARAMS_N_BUCKETS), lambda st: (1.0, st.hist["generation_tokens"].count))
        derived("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", TOKEN_BUCKETS,
                lambda st: (2048.0, st.hist["generation_tokens"].count))
        histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", "ttft")
        if new:
            histogram("vllm:time_per_output_token_seconds",
                      "Histogram of time per output token in seconds."
                      "DEPRECATED: Use vllm:inter_token_latency_seconds instead.", "itl")
            histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "itl")
        else:
            histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", "itl")
        histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", "e2e")
        histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                  "queue_time")
        histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.",
                  "inference_time")
        histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
                  "prefill_time")
        histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
                  "decode_time")
        family(out, "vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig", [
            ("vllm:cache_config_info", {
                "block_size": "16", "cache_dtype": "auto", "calculate_kv_scales": "False",
                "cpu_offload_gb": "0", "enable_prefix_caching": "True", "engine": "0",
                "gpu_memory_utilization": "0.9", "is_attention_free": "False", "num_cpu_blocks": "None",
                "num_gpu_blocks": "48402", "num_gpu_blocks_override": "None",
                "prefix_caching_hash_algo": "sha256", "sliding_window": "None", "swap_space": "4",
                "swap_space_bytes": "4294967296",
            }, 1.0),
        ])
        _http_families(out, backend, created)
        return "".join(out).encode("utf-8")


def renderer(variant: str | None = None) -> VllmRenderer:
    return VllmRenderer(variant)
