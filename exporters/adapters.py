"""The adapter seam: one module per engine, one table of them here.

An adapter turns the parsed families of one scrape into an ``EngineSnapshot``. ``wanted()``
lists the native families it reads so the parser can skip every other family cheaply (most of a
vLLM body is python_gc/process/http series nobody asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from core.samples import EngineSnapshot
from exporters.families import MetricFamily


@runtime_checkable
class Adapter(Protocol):
    @property
    def engine(self) -> str: ...

    def wanted(self) -> frozenset[str] | None:
        """Family base names to keep, or None to keep every family."""
        ...

    def normalise(self, families: Mapping[str, MetricFamily]) -> EngineSnapshot: ...


#: engine name -> factory(options from the backend's config ``options:`` mapping) -> Adapter
AdapterFactory = Callable[[Mapping[str, Any]], Adapter]


def _registry() -> dict[str, AdapterFactory]:
    from exporters import generic, llamacpp, sglang, tgi, triton, vllm

    return {
        "vllm": vllm.adapter,
        "tgi": tgi.adapter,
        "triton": triton.adapter,
        "sglang": sglang.adapter,
        "llamacpp": llamacpp.adapter,
        "prometheus": generic.adapter,
    }


def make_adapter(engine: str, options: Mapping[str, Any] | None = None) -> Adapter:
    registry = _registry()
    if engine not in registry:
        raise KeyError(f"no scrape adapter for engine {engine!r}; expected one of {', '.join(sorted(registry))}")
    return registry[engine](options or {})


class OptionsError(ValueError):
    """A backend's ``options:`` are wrong. ``path`` is relative to ``options`` (e.g. ``metrics.ttft_seconds``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def reject_options(engine: str, options: Mapping[str, Any]) -> None:
    """For engines configured by their names alone: any ``options:`` key is a mistake."""
    if options:
        raise OptionsError(str(sorted(options)[0]), f"unknown option for engine {engine} (it takes none)")
