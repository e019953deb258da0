"""Table-driven mapping from an engine's native metric families to the normalised vocabulary.

An engine module is mostly one ``EngineTable``: for each normalised signal, the native families
that feed it, their kind, unit scale and label filter. ``EngineTable.normalise`` does the rest:

* samples are grouped per model (the engine's model label, or "" when it has none); every other
  label (``pid``, ``tp_rank``, ``finished_reason``, ``method`` …) is summed away, except gauges
  marked ``agg="max"``;
* for a signal with several sources, ``combine="first"`` takes the first source family that is
  present (old and new vLLM names coexist: never add them up) and ``combine="sum"`` adds all
  present sources (Triton's own pending count plus TensorRT-LLM's in-backend waiting requests);
* a signal whose families are all absent is simply missing from the snapshot: the API reports
  it as unavailable (``null``), never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from core.conventions import SIGNALS
from core.samples import EngineSnapshot, Histogram, SeriesKey
from exporters.families import MetricFamily

SourceKind = Literal["gauge", "counter", "histogram", "mean", "hsum"]


@dataclass(frozen=True, slots=True)
class Source:
    """One native family feeding a signal.

    ``kind="mean"``: ``family`` is a cumulative counter of total time (e.g. Triton's
    ``nv_inference_request_duration_us``) and ``count_family`` the counter of events it covers;
    the result is a histogram with only the ``+Inf`` bucket, so a mean is known and percentiles
    are not. ``kind="hsum"``: the ``_sum`` of a histogram read as a counter (TGI and TensorRT-LLM
    count tokens only as per-request token-length histograms; their ``_sum`` is the total). ``scale`` converts the native unit to seconds (``1e-6`` for ``_us``, ``1e-3`` for
    ``_ms``; histogram ``le`` bounds are scaled too).
    """

    family: str
    kind: SourceKind
    scale: float = 1.0
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)
    count_family: str | None = None
    agg: Literal["sum", "max"] = "sum"


@dataclass(frozen=True, slots=True)
class SignalMap:
    signal: str
    sources: tuple[Source, ...]
    combine: Literal["first", "sum"] = "first"

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown signal {self.signal!r}")


def _matches(labels: Mapping[str, str], where: Mapping[str, frozenset[str]]) -> bool:
    for key, allowed in where.items():
        if labels.get(key) not in allowed:
            return False
    return True


@dataclass(frozen=True)
class EngineTable:
    """The mapping for one engine; ``model_label`` names the label that says which model."""

    engine: str
    model_label: str | None
    signals: tuple[SignalMap, ...]
    #: the gauge of the process's start time (Unix seconds): a counter reset's delta then covers
    #: only the time since; None where the engine exports none
    start_family: str | None = "process_start_time_seconds"

    def wanted(self) -> frozenset[str]:
        """Every native family the table reads: the parser may drop all others."""
        names: set[str] = set()
        for sm in self.signals:
            for src in sm.sources:
                names.add(src.family)
                if src.count_family:
                    names.add(src.count_family)
        if self.start_family:
            names.add(self.start_family)
        return frozenset(names)

    def normalise(self, families: Mapping[str, MetricFamily]) -> EngineSnapshot:
        snap = EngineSnapshot(started=self._started(families))
        for sm in self.signals:
            kind = SIGNALS[sm.signal]
            found = False
            for src in sm.sources:
                fam = families.get(src.family)
                if fam is None or not fam.samples:
                    continue
                values: Mapping[str, object]
                if src.kind == "mean":
                    count_fam = families.get(src.count_family or "")
                    if count_fam is None:
                        continue
                    values = self._mean(fam, count_fam, src)
                elif src.kind == "histogram":
                    values = self._histogram(fam, src)
                else:
                    values = self._scalar(fam, src)
                if not values:
                    continue
                found = True
                target: dict[SeriesKey, object] = (
                    snap.gauges if kind == "gauge" else snap.counters if kind == "counter" else snap.histograms  # type: ignore[assignment]
                )
                for model, value in values.items():
                    key = (sm.signal, model)
                    if key in target and sm.combine == "sum":
                        target[key] = _add(target[key], value)
                    elif key not in target:
                        target[key] = value
                if sm.combine == "first" and found:
                    break
        return snap

    def _started(self, families: Mapping[str, MetricFamily]) -> float | None:
        """The process start time: the newest of the family's samples (several processes of a
        multiprocess server each print theirs), when finite and positive."""
        fam = families.get(self.start_family) if self.start_family else None
        values = [s.value for s in fam.samples if math.isfinite(s.value) and s.value > 0] if fam else []
        return max(values) if values else None

    # -- per kind -------------------------------------------------------------------------------
    def _model(self, labels: Mapping[str, str]) -> str:
        return labels.get(self.model_label, "") if self.model_label else ""

    def _scalar(self, fam: MetricFamily, src: Source) -> dict[str, float]:
        out: dict[str, float] = {}
        base = fam.name
        accepted = {base + "_sum"} if src.kind == "hsum" else {base, base + "_total"}
        for s in fam.samples:
            if s.name not in accepted or not _matches(s.labels, src.where):
                continue
            v = s.value * src.scale
            if math.isnan(v):
                continue
            m = self._model(s.labels)
            if m in out:
                out[m] = max(out[m], v) if src.agg == "max" else out[m] + v
            else:
                out[m] = v
        return out

    def _histogram(self, fam: MetricFamily, src: Source) -> dict[str, Histogram]:
        base = fam.name
        buckets: dict[str, dict[float, float]] = {}
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        bucket_name, sum_name, count_name = base + "_bucket", base + "_sum", base + "_count"
        for s in fam.samples:
            if not _matches(s.labels, src.where):
                continue
            m = self._model(s.labels)
            if s.name == bucket_name:
                le_text = s.labels.get("le")
                if le_text is None:
                    continue
                le = float(le_text)
                if le != math.inf:
                    le *= src.scale
                per = buckets.setdefault(m, {})
                per[le] = per.get(le, 0.0) + s.value
            elif s.name == sum_name:
                sums[m] = sums.get(m, 0.0) + s.value * src.scale
            elif s.name == count_name:
                counts[m] = counts.get(m, 0.0) + s.value
        out: dict[str, Histogram] = {}
        for m, per in buckets.items():
            bounds = tuple(sorted(per))
            if not bounds or bounds[-1] != math.inf:
                continue  # a histogram without +Inf is malformed; percentiles would be wrong
            cum = tuple(per[b] for b in bounds)
            out[m] = Histogram(bounds=bounds, counts=cum, sum=sums.get(m, 0.0), count=counts.get(m, cum[-1]))
        return out

    def _mean(self, total: MetricFamily, events: MetricFamily, src: Source) -> dict[str, Histogram]:
        t = self._scalar(total, src)
        n = self._scalar(events, Source(events.name, "counter", where=src.where))
        return {m: Histogram.mean_only(t[m], n[m]) for m in t if m in n}


def _add(a: object, b: object) -> object:
    if isinstance(a, Histogram) and isinstance(b, Histogram):
        if a.bounds != b.bounds:
            return a  # different layouts cannot be added bucket by bucket; keep the first
        return Histogram(
            bounds=a.bounds,
            counts=tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
            sum=a.sum + b.sum,
            count=a.count + b.count,
        )
    assert isinstance(a, float | int) and isinstance(b, float | int)
    return float(a) + float(b)
