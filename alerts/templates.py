"""Annotation templates: a tiny, safe template language for alert summaries. Pure, no I/O.

A template is plain text with ``{{ name }}`` or ``{{ name | filter }}`` tags::

    >>> render("{{ backend }} p99 {{ value | duration }} > {{ threshold | duration }}",
    ...        {"value": 2.5, "threshold": 2, "labels": {"backend": "vllm-a"}})
    'vllm-a p99 2.5s > 2s'

Names: ``value``, ``threshold``, ``labels.<key>``, and every label key on its own (``backend``,
``alertname``, ``severity``, ``gpu`` …). Filters: ``duration`` (seconds → ``12.3ms``, ``2.5s``,
``1m30s``), ``percent`` (ratio → ``1.23%``), ``humanize`` (SI prefixes → ``1.23M``).

This is deliberately *not* Jinja: a tag is matched against a fixed grammar (an identifier,
optionally ``labels.<identifier>``, then filter names), looked up in plain dicts (never with
``getattr``), and anything else renders empty. Rendering never raises and never executes code,
so an operator's annotation (or a hostile label value) cannot reach Python objects. Substituted
text is not rendered again: a label value containing ``{{ x }}`` stays literal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

__all__ = ["FILTERS", "format_duration", "format_humanize", "format_percent", "format_value",
           "render", "template_problems"]

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME = re.compile(rf"({_IDENT})(?:\.({_IDENT}))?")
_FILTER = re.compile(_IDENT)

Context = Mapping[str, object]


def _sig(x: float, digits: int) -> str:
    """``x`` to ``digits`` significant digits, without exponent or trailing zeros."""
    text = f"{x:.{digits}g}"
    if "e" in text:  # 999.9 -> "1e+03": write the rounded number out, "1000"
        text = f"{float(text):f}".rstrip("0").rstrip(".")
    return text


def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def format_duration(v: float) -> str:
    """Seconds as a short human duration.

    >>> [format_duration(x) for x in (0.0123, 2.5, 90, 0, 86400 * 14 + 3600)]
    ['12.3ms', '2.5s', '1m30s', '0s', '14d1h']
    """
    if (s := _special(v)) is not None:
        return s
    if v < 0:
        return "-" + format_duration(-v)
    if v == 0:
        return "0s"
    if v < 1e-3:
        return _sig(v * 1e6, 3) + "µs"
    if v < 1:
        ms = float(_sig(v * 1e3, 3))
        if ms < 1000:  # 0.9999 s rounds to 1000 ms: say "1s" instead
            return _sig(ms, 3) + "ms"
        v = 1.0
    if v < 60:
        secs = float(_sig(v, 3))
        if secs < 60:
            return _sig(secs, 3) + "s"
    total = round(v)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def format_percent(v: float) -> str:
    """A 0..1 ratio as a percentage with up to four significant digits.

    >>> format_percent(0.0123), format_percent(0.5), format_percent(0.99991)
    ('1.23%', '50%', '99.99%')
    """
    if (s := _special(v)) is not None:
        return s
    return _sig(v * 100, 4) + "%"


_BIG = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_SMALL = ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def format_humanize(v: float) -> str:
    """SI prefixes, like Prometheus' ``humanize``.

    >>> format_humanize(1234567), format_humanize(950), format_humanize(0.0015)
    ('1.23M', '950', '1.5m')
    """
    if (s := _special(v)) is not None:
        return s
    a = abs(v)
    if a >= 1000:
        for size, prefix in _BIG:
            if a >= size:
                return _sig(v / size, 3) + prefix
    if 0 < a < 1:
        for size, prefix in _SMALL:
            if a >= size:
                return _sig(v / size, 3) + prefix
        return f"{v:.3g}"
    return _sig(v, 3)


def format_value(v: object) -> str:
    """How a bare ``{{ value }}`` prints: integers without ``.0``, floats to 6 significant digits."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if (s := _special(v)) is not None:
            return s
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.6g}"
    return str(v)


def _numeric(f: Callable[[float], str]) -> Callable[[object], str]:
    def apply(v: object) -> str:
        if v is None or v == "":
            return ""
        if isinstance(v, bool):
            return format_value(v)
        try:
            x = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return format_value(v)  # a label that is not a number: leave it as it is
        return f(x)

    return apply


#: Filter name -> function of the looked-up value; the only filters there are.
FILTERS: dict[str, Callable[[object], str]] = {
    "duration": _numeric(format_duration),
    "percent": _numeric(format_percent),
    "humanize": _numeric(format_humanize),
}


def _lookup(context: Context, head: str, key: str | None) -> object:
    labels = context.get("labels")
    if key is not None:
        if head != "labels" or not isinstance(labels, Mapping):
            return None
        return labels.get(key)
    if head in context and head != "labels":
        return context[head]
    if isinstance(labels, Mapping):
        return labels.get(head)
    return None


def _render_tag(inner: str, context: Context) -> str:
    parts = [p.strip() for p in inner.split("|")]
    m = _NAME.fullmatch(parts[0])
    if m is None:
        return ""
    value = _lookup(context, m.group(1), m.group(2))
    text: str | None = None
    for name in parts[1:]:
        f = FILTERS.get(name)
        if f is None:
            return ""
        text = f(value if text is None else text)
    return format_value(value) if text is None else text


def render(template: str, context: Context) -> str:
    """Fill ``{{ … }}`` tags from ``context`` (``value``, ``threshold``, ``labels`` …); never raises.

    Unknown names, unknown filters and anything that is not a plain name render empty.
    """
    try:
        return _TAG.sub(lambda m: _render_tag(m.group(1), context), template)
    except Exception:  # pragma: no cover - defensive: an annotation must never break evaluation
        return template


def template_problems(template: str) -> list[str]:
    """What is wrong with a template, for config validation (``render`` itself is lenient).

    >>> template_problems("{{ value | secs }} and {{ value }")
    ["unknown filter 'secs' in '{{ value | secs }}'; expected one of duration, humanize, percent"]
    """
    problems = []
    for m in _TAG.finditer(template):
        parts = [p.strip() for p in m.group(1).split("|")]
        if _NAME.fullmatch(parts[0]) is None:
            problems.append(f"invalid name {parts[0]!r} in {m.group(0)!r}; expected a name like "
                            "value, threshold, backend or labels.region")
        for name in parts[1:]:
            if name not in FILTERS:
                problems.append(f"unknown filter {name!r} in {m.group(0)!r}; expected one of "
                                + ", ".join(sorted(FILTERS)))
    return problems
