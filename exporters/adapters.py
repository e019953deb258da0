"""The table of engines: one adapter module per engine, one entry here, and the engine list the
config accepts.

A new engine is one module exposing ``adapter(options) -> Adapter`` (see ``exporters.base``)
plus one line in ``ADAPTERS``. ``openai`` is the one engine without an adapter: an
OpenAI-compatible endpoint with no ``/metrics``, watched by its streaming probe alone.

>>> ENGINES
('vllm', 'tgi', 'triton', 'sglang', 'llamacpp', 'prometheus', 'openai')
"""

from __future__ import annotations

from typing import Final

from exporters import generic, llamacpp, sglang, tgi, triton, vllm
from exporters.base import Adapter, AdapterFactory, Options

__all__ = ["ADAPTERS", "ENGINES", "PROBE_ONLY", "exported_signals", "make_adapter"]

ADAPTERS: Final[dict[str, AdapterFactory]] = {
    "vllm": vllm.adapter,
    "tgi": tgi.adapter,
    "triton": triton.adapter,
    "sglang": sglang.adapter,
    "llamacpp": llamacpp.adapter,
    "prometheus": generic.adapter,
}
#: engines watched only by their probe (no ``/metrics`` to scrape)
PROBE_ONLY: Final = ("openai",)
#: every value ``backends[].engine`` may take
ENGINES: Final = (*ADAPTERS, *PROBE_ONLY)


def make_adapter(engine: str, options: Options | None = None) -> Adapter:
    factory = ADAPTERS.get(engine)
    if factory is None:
        raise KeyError(f"no scrape adapter for engine {engine!r}; expected one of {', '.join(sorted(ADAPTERS))}")
    return factory(options or {})


_TABLES: Final = {"vllm": vllm.TABLE, "tgi": tgi.TABLE, "triton": triton.TABLE, "sglang": sglang.TABLE,
                  "llamacpp": llamacpp.TABLE}


def exported_signals(engine: str) -> frozenset[str] | None:
    """The signals an engine's ``/metrics`` can give (its table's); None where it depends on the
    backend's ``options`` (``prometheus``) or there is no ``/metrics`` (``openai``).

    >>> sorted(exported_signals("llamacpp") & {"ttft_seconds", "generation_tokens_total"})
    ['generation_tokens_total']
    """
    table = _TABLES.get(engine)
    return None if table is None else frozenset(sm.signal for sm in table.signals)
