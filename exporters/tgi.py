"""Text Generation Inference (TGI 3.3.x, ``text-generation-router-v3``) → normalised signals.

Sources, all in ``huggingface/text-generation-inference`` @ ``db931fcf42da018a3657580c64bf2720f167f9ab``:
``router/src/server.rs`` (request counters and histograms, the ``describe_*`` HELP block, bucket
definitions), ``router/src/infer/mod.rs`` and ``backends/v3/src/backend.rs`` (``tgi_request_failure{err}``),
``backends/v3/src/queue.rs`` (``tgi_queue_size``), ``backends/v3/src/backend.rs``
(``tgi_batch_current_size``), ``router/src/validation.rs`` (``tgi_request_input_length``).
Rendering by ``metrics-exporter-prometheus`` 0.15.3 (pinned in ``Cargo.lock``): counters carry no
``_total`` suffix, so the parser keeps their names as they are.

TGI serves one model and puts no model label on anything: every series is keyed by model ``""``.

Mapping:

* ``queue_depth`` ← ``tgi_queue_size`` (entries waiting in the v3 queue);
* ``requests_running`` ← ``tgi_batch_current_size`` (requests in the running batch);
* ``requests_total`` ← ``tgi_request_success`` + ``tgi_request_failure`` (all ``err``).
  ``tgi_request_count`` is *not* used: it counts arrivals, not finished requests, and the
  ``/v1/chat/completions`` and ``/v1/completions`` handlers increment it and then call
  ``generate_internal`` / ``generate_stream_internal``, which increment it again (server.rs), so
  OpenAI-route requests count twice; ``/chat_tokenize`` counts too;
* ``request_errors_total`` ← ``tgi_request_failure`` (``validation``, ``overloaded``, ``template``,
  ``incomplete``, ``dropped``, ``generation``). metrics-rs registers the family on its first
  increment, so a TGI that never failed has no such family: when ``tgi_request_success`` is present
  and ``tgi_request_failure`` is not, errors are reported as 0 (TGI has the counter, its value is 0);
* ``prompt_tokens_total`` ← ``tgi_request_input_length_sum`` (recorded at validation, so it includes
  requests that later fail); ``generation_tokens_total`` ← ``tgi_request_generated_tokens_sum``
  (successful requests only: tokens streamed before a failure are not counted). TGI has no token
  counters; histogram sums are cumulative and monotonic, so they serve as counters;
* ``e2e_latency_seconds`` ← ``tgi_request_duration`` (35 geometric buckets 0.0001·1.5^k, k=1..35);
* ``queue_time_seconds`` ← ``tgi_request_queue_duration``.

Unavailable from TGI's ``/metrics`` (absent from the snapshot, never 0):

* ``ttft_seconds``: TGI records no time-to-first-token anywhere (neither a histogram nor a
  per-request field in ``/metrics``); use a probe for TTFT;
* ``itl_seconds``: TGI's ``tgi_request_mean_time_per_token_duration`` is *not* an inter-token
  latency. server.rs records ``inference_time / generated_tokens`` once per successful request:
  a per-request average that includes the prefill (so it tracks TTFT for short answers) and
  whose percentiles are percentiles of per-request means, not of token gaps. Mapping it to
  ``itl_seconds`` would put a different quantity under a name users compare across engines, so
  it is left unmapped (``inferwatch`` reports ITL for TGI as unavailable);
* ``kv_cache_usage_ratio``, ``prefix_cache_hit_ratio`` and the prefix-cache counters.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.conventions import (
    E2E_LATENCY_SECONDS,
    GENERATION_TOKENS_TOTAL,
    PROMPT_TOKENS_TOTAL,
    QUEUE_DEPTH,
    QUEUE_TIME_SECONDS,
    REQUEST_ERRORS_TOTAL,
    REQUESTS_RUNNING,
    REQUESTS_TOTAL,
)
from core.samples import EngineSnapshot
from exporters.base import Options, reject_options
from exporters.families import MetricFamily
from exporters.mapping import EngineTable, SignalMap, Source

ENGINE = "tgi"

TABLE = EngineTable(
    engine=ENGINE,
    model_label=None,
    signals=(
        SignalMap(QUEUE_DEPTH, (Source("tgi_queue_size", "gauge"),)),
        SignalMap(REQUESTS_RUNNING, (Source("tgi_batch_current_size", "gauge"),)),
        SignalMap(
            REQUESTS_TOTAL,
            (Source("tgi_request_success", "counter"), Source("tgi_request_failure", "counter")),
            combine="sum",
        ),
        SignalMap(REQUEST_ERRORS_TOTAL, (Source("tgi_request_failure", "counter"),)),
        SignalMap(E2E_LATENCY_SECONDS, (Source("tgi_request_duration", "histogram"),)),
        SignalMap(QUEUE_TIME_SECONDS, (Source("tgi_request_queue_duration", "histogram"),)),
        # TGI has no token counters: the per-request token-length histograms' _sum are the totals
        SignalMap(PROMPT_TOKENS_TOTAL, (Source("tgi_request_input_length", "hsum"),)),
        SignalMap(GENERATION_TOKENS_TOTAL, (Source("tgi_request_generated_tokens", "hsum"),)),
    ),
)

class TgiAdapter:
    """The table plus what a table cannot say: errors = 0 until TGI creates its failure counter."""

    engine = ENGINE

    def __init__(self, table: EngineTable = TABLE) -> None:
        self.table = table

    def wanted(self) -> frozenset[str]:
        return self.table.wanted()

    def normalise(self, families: Mapping[str, MetricFamily]) -> EngineSnapshot:
        snap = self.table.normalise(families)
        success = families.get("tgi_request_success")
        if success is not None and success.samples and (REQUEST_ERRORS_TOTAL, "") not in snap.counters:
            snap.counters[(REQUEST_ERRORS_TOTAL, "")] = 0.0
        return snap


def adapter(options: Options) -> TgiAdapter:
    """TGI takes no options (one model, fixed names)."""
    reject_options("tgi", options)
    return TgiAdapter()
