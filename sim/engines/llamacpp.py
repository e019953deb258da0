"""A simulated ``llama-server --metrics`` body, printed as llama.cpp's server prints it.

Source: ``ggml-org/llama.cpp`` ``tools/server/server.cpp``, the ``get_metrics`` handler: a
``json all_metrics_def`` object with the keys ``"counter"`` and ``"gauge"`` (nlohmann::json objects
iterate their keys in sorted order, so every counter comes before every gauge), each entry printed
as ``# HELP llamacpp:<name> <help>`` / ``# TYPE llamacpp:<name> <type>`` / ``llamacpp:<name> <value>``
with no labels and no blank lines. Values go through ``json_value(metric_def, "value", 0.)``, i.e.
become ``double``, and are written by a ``std::stringstream`` with its default precision of 6
significant digits: ``48587``, ``8.168``, ``0`` — and ``1.23457e+06`` once a counter passes a
million (the real server loses precision there too). The seconds counters are
``(uint64_t) t_ms / 1.e3``: milliseconds truncated, printed in seconds. Content type
``text/plain; version=0.0.4`` (no charset).

Variants: ``None`` (current: 7 counters incl. ``n_tokens_max``, 4 gauges, no KV-cache metrics) and
``"old"`` (before PR #13660: no ``n_tokens_max``; gauges ``kv_cache_usage_ratio`` and
``kv_cache_tokens``; HELP "Number of request processing." / "Number of request deferred.").

llama-server serves one model and has no model label: a ``SimBackend`` with several models is
printed as one server — counters and request gauges summed over models, the KV ratio the largest.
Simplification: ``prompt_tokens_total`` counts every prompt token of the state (a real server
counts only the tokens it evaluated, after prompt-cache reuse).
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.state import SimBackend

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
        if variant not in (None, "current", "old"):
            raise ValueError(f"unknown llamacpp variant {variant!r}; expected None or 'old'")
        self.old = variant == "old"
        self.layouts = LAYOUTS

    def render(self, backend: SimBackend) -> bytes:
        states = list(backend.models.values())
        prompt = sum(st.prompt_tokens for st in states)
        predicted = sum(st.generation_tokens for st in states)
        t_prompt = _seconds(sum(st.hist["prefill_time"].sum for st in states))
        t_predict = _seconds(sum(st.hist["decode_time"].sum for st in states))
        running = sum(st.running for st in states)
        deferred = sum(st.waiting for st in states)
        n_decode = -(-predicted // max(1, running)) if predicted else 0
        busy_per_decode = float(running) if n_decode else 0.0
        kv_ratio = max((st.kv_cache_usage for st in states), default=0.0)

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
        out: list[str] = []
        for typ, defs in (("counter", counters), ("gauge", gauges)):
            for name, help_text, value in defs:
                out.append(f"# HELP llamacpp:{name} {help_text}\n"
                           f"# TYPE llamacpp:{name} {typ}\n"
                           f"llamacpp:{name} {_num(float(value))}\n")
        return "".join(out).encode("utf-8")


def renderer(variant: str | None = None) -> LlamacppRenderer:
    return LlamacppRenderer(variant)
