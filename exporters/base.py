"""The seams every source plugs into: the engine ``Adapter`` and its options' errors.

An adapter turns the parsed families of one scrape into an ``EngineSnapshot``. ``wanted()``
lists the native families it reads so the parser can skip every other family cheaply (most of a
vLLM body is python_gc/process/http series nobody asked for). One module per engine implements
it; ``exporters.adapters`` is the table of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from core.samples import EngineSnapshot
from exporters.families import MetricFamily

__all__ = ["Adapter", "AdapterFactory", "OptionValue", "Options", "OptionsError", "reject_options"]

#: A value of a backend's ``options:`` mapping, as YAML gives it.
OptionValue = str | int | float | bool | None | list["OptionValue"] | dict[str, "OptionValue"]
Options = Mapping[str, OptionValue]


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
