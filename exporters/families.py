"""What the text parser produces: metric families with their samples. No I/O here.

A family's ``name`` is its *base* name: for a ``counter`` a trailing ``_total`` is removed
(``# TYPE vllm:prompt_tokens_total counter`` and OpenMetrics ``# TYPE vllm:prompt_tokens counter``
both give ``vllm:prompt_tokens``), as ``prometheus_client.parser`` does. Samples keep their full
names (``vllm:prompt_tokens_total``, ``..._bucket``, ``..._sum``, ``..._count``, ``..._created``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None


@dataclass(slots=True)
class MetricFamily:
    name: str
    type: str  # counter | gauge | histogram | summary | untyped | unknown | info | stateset | gaugehistogram
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


class ParseError(ValueError):
    """Bad exposition text. ``lineno`` is 1-based; ``str(err)`` names the line."""

    def __init__(self, message: str, lineno: int) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.message = message
        self.lineno = lineno


@dataclass(frozen=True, slots=True)
class SeriesLimits:
    """What one scrape may hold, as Prometheus's scrape limits (0: no limit): ``samples``
    (``sample_limit``: sample lines in the body), and per kept series ``labels``
    (``label_limit``), ``label_name_length`` and ``label_value_length`` (characters)."""

    samples: int = 0
    labels: int = 0
    label_name_length: int = 0
    label_value_length: int = 0


class LimitError(ValueError):
    """A body refused as a whole: over one of its ``SeriesLimits`` (``reason`` names the limit,
    by its config key), or holding one series twice."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
