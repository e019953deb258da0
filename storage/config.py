"""The storage config section: where the database is, and how long what is kept.

``storage: sqlite:///inferwatch.db`` (the default, one file) or
``storage: postgresql+psycopg://user@host/db``; ``retention: {raw: 24h, rollups: 30d,
rollup_step: 1m}``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from core.schema import ConfigModel
from core.units import PositiveDuration
from storage.retention import Retention

__all__ = ["RetentionConfig", "StorageSettings"]


class RetentionConfig(ConfigModel):
    raw: PositiveDuration = 86400.0
    rollups: PositiveDuration = 30 * 86400.0
    rollup_step: PositiveDuration = 60.0

    def to_retention(self) -> Retention:
        return Retention(self.raw, self.rollups, self.rollup_step)


class StorageSettings(ConfigModel):
    """The storage's top-level keys (a part of the whole config, see ``inferwatch.config``)."""

    storage: str = "sqlite:///inferwatch.db"
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str) -> str:
        scheme = v.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(f"unsupported storage {v!r}; expected sqlite:///path.db or postgresql+psycopg://user@host/db")
        if scheme == "postgresql" or scheme == "postgres":
            raise ValueError("write postgresql+psycopg://… so the psycopg 3 driver is used")
        return v
