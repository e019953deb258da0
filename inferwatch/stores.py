"""The one database and the stores on it, opened, migrated, maintained and closed together.

>>> stores = Stores.open("sqlite:///:memory:"); stores.migrate()
>>> stores.alerts.pending_count(), stores.silences.list_silences()
(0, [])
>>> stores.close()
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.outbox import AlertStore
from alerts.silences import SilenceStore
from collector.observations import ObservationStore
from collector.query import Reads
from collector.store import MetricsStore
from storage.database import Database
from storage.retention import Retention

__all__ = ["Stores"]


@dataclass(frozen=True)
class Stores:
    db: Database
    metrics: MetricsStore
    observations: ObservationStore
    alerts: AlertStore
    silences: SilenceStore

    @classmethod
    def open(cls, url: str, retention: Retention | None = None) -> Stores:
        db = Database(url)
        return cls(db, MetricsStore(db, retention), ObservationStore(db), AlertStore(db), SilenceStore(db))

    @property
    def reads(self) -> Reads:
        """What the query layer reads (metrics and observations)."""
        return Reads(self.metrics, self.observations)

    def migrate(self) -> None:
        self.db.migrate()

    def maintain(self, now: float) -> None:
        """Roll up and expire metrics; expire observations, finished notifications and alert
        history older than the rollup retention. Idempotent."""
        self.metrics.maintain(now)
        before = now - self.metrics.retention.rollup_seconds
        self.observations.expire(before)
        self.alerts.expire(before)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
