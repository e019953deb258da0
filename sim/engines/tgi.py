"""A simulated TGI 3.3.x ``/metrics`` body.

Names, HELP texts and buckets from ``huggingface/text-generation-inference`` @
``db931fcf42da018a3657580c64bf2720f167f9ab`` (``router/src/server.rs`` metrics block, where the
*first* ``describe_*`` of a name wins; ``backends/v3/src/{backend,queue,lib}.rs``). Rendering as
``metrics-exporter-prometheus`` 0.15.3 does it (``metrics-rs/metrics`` @
``ca453d31009e1809161a0644943bbf5a8b3eb2e6``, ``metrics-exporter-prometheus/src/recorder.rs``
``render``, ``formatting.rs``): counters, then gauges, then histograms; ``# HELP`` only for names
that were described; no ``_total`` suffix; integer counters; gauges and bucket bounds in Rust
``f64`` ``Display`` (shortest round-trip digits, never an exponent, ``1`` not ``1.0``); buckets
then ``+Inf`` then ``_sum`` then ``_count``; a blank line after every family. Served as
``text/plain; charset=utf-8`` (axum ``String`` response).

Simplifications: real TGI orders families within a kind by hash-map order (arbitrary, changing
between processes); here they come in a fixed order. TGI serves one model; a ``SimBackend`` with
several models is rendered as their *sum*. Families a metrics-rs recorder has not registered yet
(no request so far, no failure so far) are left out, as TGI leaves them out. The simulation has no
per-request "mean time per token": ``tgi_request_mean_time_per_token_duration`` is printed from the
simulated inter-token observations (one per output token after the first), so its ``_count`` is a
token count rather than a request count. ``max_input_tokens`` / ``max_total_tokens`` (which set
the linear token buckets) are taken as 4095 / 4096.
"""

from __future__ import annotations

import math
from decimal import Decimal

from sim.state import HistState, SimBackend

MAX_INPUT_TOKENS = 4095
MAX_TOTAL_TOKENS = 4096


def _duration_buckets() -> tuple[float, ...]:
    out, value = [], 0.0001
    for _ in range(35):
        value *= 1.5  # same float arithmetic as server.rs, so the same bounds bit for bit
        out.append(value)
    return tuple(out)


DURATION_BUCKETS = _duration_buckets()
INPUT_LENGTH_BUCKETS = tuple((MAX_INPUT_TOKENS / 100.0) * (x + 1) for x in range(100))
GENERATED_TOKENS_BUCKETS = tuple((MAX_TOTAL_TOKENS / 100.0) * (x + 1) for x in range(100))

LAYOUTS = {
    "e2e": DURATION_BUCKETS,
    "queue_time": DURATION_BUCKETS,
    "inference_time": DURATION_BUCKETS,
    "itl": DURATION_BUCKETS,
    "prompt_tokens": INPUT_LENGTH_BUCKETS,
    "generation_tokens": GENERATED_TOKENS_BUCKETS,
}

#: family -> HELP (first description in server.rs wins; names never described have none)
HELP = {
    "tgi_request_success": "Number of successful requests",
    "tgi_request_duration": "Request duration",
    "tgi_request_validation_duration": "Request validation duration",
    "tgi_request_queue_duration": "Request queue duration",
    "tgi_request_inference_duration": "Request inference duration",
    "tgi_request_mean_time_per_token_duration": "Mean time per token per request",
    "tgi_request_generated_tokens": "Generated tokens per request",
    "tgi_batch_inference_count": "Inference calls per method (prefill or decode)",
    "tgi_request_count": "Total number of requests",
    "tgi_batch_inference_success": "Number of successful inference calls per method (prefill or decode)",
    "tgi_batch_current_size": "Current batch size",
    "tgi_queue_size": "Current queue size",
    "tgi_batch_current_max_tokens": "Maximum tokens for the current batch",
    "tgi_batch_total_tokens": "Maximum amount of tokens in total.",  # described, never recorded
    "tgi_request_max_new_tokens": "Maximum new tokens per request",
    "tgi_batch_inference_duration": "Batch inference duration",
    "tgi_batch_forward_duration": "Batch forward duration per method (prefill or decode)",
    "tgi_request_skipped_tokens": "Speculated tokens per request",
    "tgi_batch_filter_duration": "Time spent filtering batches and sending generated tokens per method (prefill or decode)",
    "tgi_batch_decode_duration": "Time spent decoding a batch per method (prefill or decode)",
    "tgi_request_input_length": "Input token length per request",
    "tgi_batch_next_size": "Batch size of the next batch",
}

#: histogram family -> observation kind
HISTOGRAMS = (
    ("tgi_request_duration", "e2e"),
    ("tgi_request_queue_duration", "queue_time"),
    ("tgi_request_inference_duration", "inference_time"),
    ("tgi_request_mean_time_per_token_duration", "itl"),
    ("tgi_request_generated_tokens", "generation_tokens"),
    ("tgi_request_input_length", "prompt_tokens"),
)


def rust_f64(x: float) -> str:
    """Rust's ``impl Display for f64``: shortest round-trip digits, positional, no ``.0``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = format(Decimal(repr(float(x))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _merge(hists: list[HistState], bounds: tuple[float, ...]) -> HistState:
    out = HistState(bounds)
    for h in hists:
        for i, c in enumerate(h.buckets):
            out.buckets[i] += c
        out.sum += h.sum
        out.count += h.count
    return out


class TgiRenderer:
    engine = "tgi"
    content_type = "text/plain; charset=utf-8"

    def __init__(self, variant: str | None = None) -> None:
        if variant not in (None, "", "v3"):
            raise ValueError(f"unknown tgi variant {variant!r}; expected None or 'v3'")
        self.layouts = LAYOUTS

    def render(self, backend: SimBackend) -> bytes:
        states = list(backend.models.values())
        requests = sum(st.requests for st in states)
        errors = sum(st.errors for st in states)
        out: list[str] = []

        def family(name: str, kind: str, lines: list[str]) -> None:
            if name in HELP:
                out.append(f"# HELP {name} {HELP[name]}\n")
            out.append(f"# TYPE {name} {kind}\n")
            out.extend(lines)
            out.append("\n")

        # -- counters (u64) ---------------------------------------------------------------------
        if requests:
            family("tgi_request_count", "counter", [f"tgi_request_count {requests}\n"])
        if requests - errors:
            family("tgi_request_success", "counter", [f"tgi_request_success {requests - errors}\n"])
            batches = max(1, (requests - errors) // 4)
            family("tgi_batch_inference_count", "counter", [
                f'tgi_batch_inference_count{{method="prefill"}} {batches}\n',
                f'tgi_batch_inference_count{{method="decode"}} {sum(st.generation_tokens for st in states)}\n',
            ])
        if errors:
            family("tgi_request_failure", "counter", [f'tgi_request_failure{{err="generation"}} {errors}\n'])

        # -- gauges (f64) ---------------------------------------------------------------------------
        running = sum(st.running for st in states)
        family("tgi_batch_current_size", "gauge", [f"tgi_batch_current_size {rust_f64(float(running))}\n"])
        family("tgi_queue_size", "gauge", [f"tgi_queue_size {rust_f64(float(sum(st.waiting for st in states)))}\n"])
        family("tgi_batch_current_max_tokens", "gauge",
               [f"tgi_batch_current_max_tokens {rust_f64(float(running * 520))}\n"])
        family("tgi_batch_max_total_tokens", "gauge", [f"tgi_batch_max_total_tokens {rust_f64(262144.0)}\n"])

        # -- histograms -------------------------------------------------------------------------------
        for name, kind in HISTOGRAMS:
            h = _merge([st.hist[kind] for st in states], self.layouts[kind])
            if not h.count:
                continue
            lines = [
                f'{name}_bucket{{le="{rust_f64(b)}"}} {c}\n' for b, c in zip(h.bounds, h.cumulative(), strict=False)
            ]
            lines.append(f'{name}_bucket{{le="+Inf"}} {h.count}\n')
            lines.append(f"{name}_sum {rust_f64(h.sum)}\n")
            lines.append(f"{name}_count {h.count}\n")
            family(name, "histogram", lines)
        return "".join(out).encode()


def renderer(variant: str | None = None) -> TgiRenderer:
    return TgiRenderer(variant)
