"""Benchmark: exporters.parser.parse against prometheus_client's parser on a vLLM-shaped body.

Run: ``.venv/bin/python -m bench.bench_parser`` (or ``python bench/bench_parser.py``).
Options: ``--models N --engines N --rounds N``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.parser import parse
from sim.engines.vllm import build_1_2_5_buckets

# vLLM 0.10.x bucket lists (vllm/v1/metrics/loggers.py)
TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
        10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0)
REQ_LAT = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PARAMS_N = (1, 2, 5, 10, 20)
HIGHR = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5,
         5.0, 7.5, 10.0, 30.0, 60.0)


TOKENS = tuple(build_1_2_5_buckets(40960))

#: the families a vLLM adapter reads (base names)
KEEP = frozenset({
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
    "vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_queries", "vllm:gpu_prefix_cache_hits", "vllm:prompt_tokens",
    "vllm:generation_tokens", "vllm:request_success", "vllm:time_to_first_token_seconds",
    "vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds",
})


def build_body(models: int = 3, engines: int = 2, seed: int = 7) -> str:
    """A vLLM 0.10.x-shaped /metrics body rendered by prometheus_client (0.0.4 text)."""
    rnd = random.Random(seed)
    reg = CollectorRegistry()
    lab = ["model_name", "engine"]
    g = {n: Gauge(n, h, lab, registry=reg) for n, h in [
        ("vllm:num_requests_running", "Number of requests in model execution batches."),
        ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
        ("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage."),
        ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
    ]}
    c = {n: Counter(n, h, lab, registry=reg) for n, h in [
        ("vllm:gpu_prefix_cache_queries", "GPU prefix cache queries."),
        ("vllm:gpu_prefix_cache_hits", "GPU prefix cache hits."),
        ("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."),
        ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
        ("vllm:num_preemptions", "Cumulative number of preemption from the engine."),
        ("vllm:prompt_tokens", "Number of prefill tokens processed."),
        ("vllm:generation_tokens", "Number of generation tokens processed."),
    ]}
    success = Counter("vllm:request_success", "Count of successfully processed requests.",
                      lab + ["finished_reason"], registry=reg)
    h = {n: Histogram(n, hlp, lab, buckets=b, registry=reg) for n, hlp, b in [
        ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", TOKENS),
        ("vllm:request_generation_tokens", "Number of generation tokens processed.", TOKENS),
        ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION),
        ("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.", TOKENS),
        ("vllm:request_params_n", "Histogram of the n request parameter.", PARAMS_N),
        ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", TOKENS),
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT),
        ("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.", TPOT),
        ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", TPOT),
        ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQ_LAT),
        ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", REQ_LAT),
        ("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", REQ_LAT),
        ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", REQ_LAT),
        ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", REQ_LAT),
    ]}
    for mi in range(models):
        model = ["Qwen/Qwen3-0.6B", "meta-llama/Llama-3.1-8B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3",
                 "google/gemma-2-9b-it"][mi % 4] + ("" if mi < 4 else f"-{mi}")
        for e in range(engines):
            lv = (model, str(e))
            for gauge in g.values():
                gauge.labels(*lv).set(rnd.random() * 10)
            for counter in c.values():
                counter.labels(*lv).inc(rnd.randrange(1, 10**7))
            for reason in ("stop", "length", "abort"):
                success.labels(*lv, reason).inc(rnd.randrange(1, 10**4))
            for hist in h.values():
                child = hist.labels(*lv)
                for _ in range(200):
                    child.observe(rnd.expovariate(1 / 2.0) * rnd.choice((0.01, 1, 100)))
    handlers = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics",
                "/tokenize", "/detokenize", "/v1/embeddings", "/version", "/ping"]
    reqs = Counter("http_requests_total", "Total number of requests by method, status and handler.",
                   ["handler", "method", "status"], registry=reg)
    req_size = Summary("http_request_size_bytes", "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
                       ["handler"], registry=reg)
    resp_size = Summary("http_response_size_bytes", "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
                        ["handler"], registry=reg)
    highr = Histogram("http_request_duration_highr_seconds", "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
                      buckets=HIGHR, registry=reg)
    dur = Histogram("http_request_duration_seconds", "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
                    ["handler", "method"], buckets=(0.1, 0.5, 1), registry=reg)
    for hd in handlers:
        for method in ("GET", "POST"):
            for status in ("2xx", "4xx", "5xx"):
                reqs.labels(hd, method, status).inc(rnd.randrange(1, 10**5))
            dur.labels(hd, method).observe(rnd.random())
        req_size.labels(hd).observe(rnd.randrange(100, 10**5))
        resp_size.labels(hd).observe(rnd.randrange(100, 10**5))
        highr.observe(rnd.random() * 5)
    for col in (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR):
        reg.register(col)
    return generate_latest(reg).decode("utf-8")


def timings(fns: dict[str, object], rounds: int) -> dict[str, float]:
    """Best-of time per function; the functions take turns each round (fair on a noisy box)."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    body = build_body(args.models, args.engines)
    data = body.encode("utf-8")
    nlines = body.count("\n")
    full = parse(body)
    kept = parse(body, keep=KEEP)
    ref = list(text_string_to_metric_families(body))
    assert set(kept) == KEEP & set(full), sorted(set(KEEP) - set(kept))
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"body: {len(body):,} bytes, {nlines:,} lines, {len(full)} families "
          f"({sum(len(f.samples) for f in full.values()):,} samples; reference {len(ref)} families); "
          f"keep: {len(kept)} families")
    t = timings({
        "prometheus_client.parser": lambda: list(text_string_to_metric_families(body)),
        "parse(text)": lambda: parse(body),
        "parse(bytes)": lambda: parse(data),
        f"parse(text, keep={len(KEEP)} vllm families)": lambda: parse(body, keep=KEEP),
    }, args.rounds)
    t_ref = t["prometheus_client.parser"]
    for label, secs in t.items():
        print(f"{label:42s} {secs * 1e3:9.2f} ms  {nlines / secs:12,.0f} lines/s  {t_ref / secs:6.1f}x")

if __name__ == "__main__":
    main()
