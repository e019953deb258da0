"""The seams every source plugs into: ``Source`` (what the collector schedules) and the engine
``Adapter`` (what an engine scrape normalises with).

A **source** is one thing observed on a schedule: an engine's ``/metrics``
(``exporters.scrape.EngineScrape``), a streaming probe (``exporters.probe.StreamProbe``), a TLS
check (``exporters.tls.TlsCheck``), the local GPUs (``exporters.nvml.NvmlSource``), a
dcgm-exporter (``exporters.dcgm.DcgmScrape``) or a deployment-checklist audit
(``exporters.audit.AuditSource``). ``collect`` never raises: a failure is a result
(``up=False`` with a reason, ``ok=False`` with an error). Each source carries the limits it was
configured with (timeouts; body cap and content-type check for expositions, ``exporters.http``).
A new source is one more class with these four members.

An **adapter** turns the parsed families of one scrape into an ``EngineSnapshot``. ``wanted()``
lists the native families it reads so the parser can skip every other family cheaply (most of a
vLLM body is python_gc/process/http series nobody asked for). One module per engine implements
it; ``exporters.adapters`` is the table of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, Protocol, runtime_checkable

from pydantic import JsonValue

from core.samples import EngineSnapshot, Observation
from exporters.families import MetricFamily
from exporters.http import Http

__all__ = ["Adapter", "AdapterFactory", "Clock", "Options", "OptionsError", "Schedule", "Source", "reject_options"]

#: A backend's ``options:`` mapping, as YAML gives it.
Options = Mapping[str, JsonValue]
#: Unix seconds now (``time.time``, or a test's fake clock).
Clock = Callable[[], float]
#: How a source is run: ``grid``: on a fixed grid at a stable offset, skipping ticks it fell
#: behind on, one of ``scrape_concurrency`` at a time (as Prometheus scrapes); ``after``:
#: ``interval`` after its last start, or right after it ended if it ran longer (never overlapping
#: itself, never skipping).
Schedule = Literal["grid", "after"]


@runtime_checkable
class Source(Protocol):
    @property
    def name(self) -> str:
        """Unique among the sources, for logs: ``vllm-a`` (its scrape), ``probe vllm-a``, ``tls h:443`` …"""
        ...

    @property
    def interval(self) -> float: ...

    @property
    def schedule(self) -> Schedule: ...

    async def collect(self, http: Http, clock: Clock) -> Observation:
        """One observation now; never raises."""
        ...


@runtime_checkable
class Adapter(Protocol):
    @property
    def engine(self) -> str: ...

    def wanted(self) -> frozenset[str] | None:
        """Family base names to keep, or None to keep every family."""
        ...

    def normalise(self, families: Mapping[str, MetricFamily]) -> EngineSnapshot: ...


#: engine name -> factory(options from the backend's config ``options:`` mapping) -> Adapter
AdapterFactory = Callable[[Options], Adapter]


class OptionsError(ValueError):
    """A backend's ``options:`` are wrong. ``path`` is relative to ``options`` (e.g. ``metrics.ttft_seconds``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def reject_options(engine: str, options: Options) -> None:
    """For engines configured by their names alone: any ``options:`` key is a mistake."""
    if options:
        raise OptionsError(str(sorted(options)[0]), f"unknown option for engine {engine} (it takes none)")
