"""Label names as Prometheus defines them, and the ones inferwatch reserves. Pure.

>>> is_label_name("region"), is_label_name("9lives"), is_label_name("__name__")
(True, False, True)
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["LABEL_NAME", "LABEL_NAME_RE", "RESERVED_LABELS", "is_label_name"]

#: The text of a label name: ``[a-zA-Z_][a-zA-Z0-9_]*`` (the exposition format's own rule).
LABEL_NAME: Final = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_NAME_RE: Final = re.compile(LABEL_NAME)
#: Labels inferwatch sets itself on what it exports; a backend's own labels may not use them.
RESERVED_LABELS: Final = frozenset({"backend", "engine", "model", "quantile", "le"})


def is_label_name(name: str) -> bool:
    """Whether ``name`` is a valid label name (``__``-prefixed ones included: Prometheus keeps
    those for itself, callers that forbid them say so)."""
    return LABEL_NAME_RE.fullmatch(name) is not None
