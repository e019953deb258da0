"""How long each store keeps what it holds (config section ``retention:``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Retention"]


@dataclass(frozen=True)
class Retention:
    """Raw metrics for ``raw_seconds``, then ``rollup_step`` buckets until ``rollup_seconds``,
    then deleted. Observations, finished notifications and alert history are kept for
    ``rollup_seconds``."""

    raw_seconds: float = 86400
    rollup_seconds: float = 30 * 86400
    rollup_step: float = 60
