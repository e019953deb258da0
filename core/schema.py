"""The base of every config model: frozen, and strict about unknown fields.

Each package owns the schema of its own config section (``collector.config``, ``alerts.config``,
``web.config``, ``storage.config``); ``inferwatch.config`` composes them into the whole file.
A misspelt key is an error, never silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigModel"]


class ConfigModel(BaseModel):
    """A config section (or part of one): immutable once parsed, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)
