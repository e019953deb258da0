"""What build of inferwatch this is: ``VERSION``, read once from the installed package's metadata
("unknown" when run from a source tree that was never installed)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

__all__ = ["VERSION"]

try:
    VERSION: Final[str] = version("inferwatch")
except PackageNotFoundError:
    VERSION = "unknown"  # type: ignore[misc]
