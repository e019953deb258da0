"""Renderers that print a simulated backend as each engine's own ``/metrics`` body.

Each module exposes ``renderer(variant: str | None = None) -> EngineRenderer``; ``variant`` picks
an engine release where names differ (e.g. vLLM ``"v0"`` old names vs ``"v1"``; llama.cpp
``"old"`` with ``kv_cache_usage_ratio``).
"""

from __future__ import annotations

from sim.state import EngineRenderer


def make_renderer(engine: str, variant: str | None = None) -> EngineRenderer:
    from sim.engines import llamacpp, sglang, tgi, triton, vllm

    modules = {"vllm": vllm, "tgi": tgi, "triton": triton, "sglang": sglang, "llamacpp": llamacpp}
    if engine not in modules:
        raise KeyError(f"no simulated engine {engine!r}; expected one of {', '.join(sorted(modules))}")
    return modules[engine].renderer(variant)
