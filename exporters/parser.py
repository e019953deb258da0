"""Parser for the Prometheus text exposition format 0.0.4 and the OpenMetrics 1.0 text subset.

``parse(text, keep=None)`` is pure (no I/O) and returns ``{base name: MetricFamily}``.

Rules, in short (see ``exporters/families.py`` for the output types):

* ``# HELP`` / ``# TYPE`` may come in either order; HELP is optional. HELP text is unescaped
  left to right (``\\\\`` → ``\\``, ``\\n`` → newline, ``\\"`` → ``"``; any other backslash is kept
  as written). ``# UNIT``, other ``#`` comments and blank lines are ignored. ``# EOF`` ends the
  body; anything after it but whitespace is an error.
* The family key is the *base* name: a counter declared ``x_total`` is family ``x`` (as is an
  OpenMetrics ``# TYPE x counter``); an ``info`` declared ``x_info`` is family ``x``.
* A sample belongs to a declared family when its name is one the family's type allows
  (counter: ``x``, ``x_total``, ``x_created``; histogram / gaugehistogram: ``x_bucket``,
  ``x_sum``, ``x_count``, ``x_created``, ``x_gsum``, ``x_gcount``; summary: ``x``, ``x_sum``,
  ``x_count``, ``x_created``; info: ``x_info``; others: ``x``). Association is by name through
  a lookup table, so a family's samples may be spread over the body (SGLang multiprocess mode).
  A declared name wins over a suffix name (prometheus_client's 0.0.4 ``# TYPE x_created gauge``
  is its own family). A sample with no declared family becomes an ``untyped`` family named after
  it; a TYPE that arrives after such samples adopts them.
* Sample names, label names and values, and numbers follow the formats; label values unescape
  ``\\\\``, ``\\"`` and ``\\n`` (other escapes are kept as written, like prometheus_client);
  a trailing comma and ``{}`` are allowed; duplicate label names are an error. Values and
  timestamps are Python floats (``NaN``, ``+Inf``, ``-Inf``, ``Inf``, exponents; no ``_``);
  a timestamp is kept as written (milliseconds in 0.0.4, seconds in OpenMetrics). OpenMetrics
  exemplars (``... # {trace_id="a"} 0.5 123.4``) are dropped without being checked.
* ``keep``: families whose base name is not in ``keep`` are dropped at the name: their sample
  lines are neither tokenised into labels nor validated (undeclared samples are judged by their
  own name).
* ``limits`` (``SeriesLimits``, Prometheus's scrape limits): a body with more sample lines than
  ``samples`` raises :class:`LimitError` before any line is parsed; a kept series with more
  labels, or a longer label name or value, than allowed raises it after. Dropped families'
  labels are never read, so they are not checked (as Prometheus checks after relabelling).
* A kept series (name and labels) that appears twice raises :class:`LimitError`: Prometheus
  rejects such samples too, and adding them up would be a silent wrong number.
* Errors raise :class:`ParseError` with a 1-based line number. Bytes are decoded as strict
  UTF-8; invalid UTF-8 raises ``ParseError`` naming the line that holds the first bad byte.
  ``\\r\\n`` line ends are accepted. Every step is linear in the input (no backtracking regex
  over a line), so a 10 MB garbage line fails promptly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container

from core.labels import LABEL_NAME
from exporters.families import LimitError, MetricFamily, ParseError, Sample, SeriesLimits

__all__ = ["LimitError", "ParseError", "SeriesLimits", "parse"]

_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
# Possessive quantifiers: no backtracking state, so memory stays flat on a 10 MB line.
_LABEL_VALUE = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'
# One label of a label set and what follows it (the general path; the fast path is str.split).
_PAIR_RE = re.compile(
    r"[ \t]*+(" + LABEL_NAME + r")[ \t]*+=[ \t]*+" + _LABEL_VALUE + r"[ \t]*+([,}])", re.S
)
_CLOSE_RE = re.compile(r"[ \t]*+\}")
# Used only to explain an error in a label set.
_EMPTY_TERM_RE = re.compile(r"[ \t]*+,")
_PAIR_FULL_RE = re.compile(r"[ \t]*+" + LABEL_NAME + r"[ \t]*+=[ \t]*+" + _LABEL_VALUE + r"[ \t]*+", re.S)
_PAIR_HEAD_RE = re.compile(r"[ \t]*+" + LABEL_NAME + r"[ \t]*+=[ \t]*+\"")
_ESC_RE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"\\": "\\", "n": "\n", '"': '"'}

_HIST = ("_bucket", "_sum", "_count", "_created", "_gsum", "_gcount")
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "stateset": ("",),
    "histogram": _HIST,
    "gaugehistogram": _HIST,
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
_SKIP: list[Sample] = []  # lookup target of a dropped family; never appended to
_INF = math.inf


class _Bad(ValueError):
    """A malformed line, with a message fit for the user (the caller adds the line number)."""


def _unescape_one(m: re.Match[str]) -> str:
    return _ESCAPES.get(m.group(1), m.group(0))


def _unescape(s: str) -> str:
    """Undo ``\\\\``, ``\\"`` and ``\\n`` left to right; other backslashes stay as written."""
    if "\\" not in s:
        return s
    if "\x00" not in s:
        # str.replace scans left to right like an escape reader: every "\\\\" pair is one escape
        # (no escape ends in a backslash otherwise), and after them every backslash is single.
        return (s.replace("\\\\", "\x00").replace("\\n", "\n").replace('\\"', '"')
                .replace("\x00", "\\"))
    return _ESC_RE.sub(_unescape_one, s)


def _snip(text: str) -> str:
    """How an error names the offending text: by its length only. A reason is shown in pages,
    the API and logs, and the body is the target's (a redirect to an internal page must not
    put that page's content there)."""
    return f"({len(text)} characters)"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        raise ParseError(f"invalid UTF-8 at byte offset {e.start}", lineno) from None


def _label_error(line: str, pos: int) -> str:
    """Explain why no label (or closing brace) starts at ``pos`` (error path only)."""
    if _EMPTY_TERM_RE.match(line, pos) is not None:
        return f"empty label term at column {pos + 1}"
    full = _PAIR_FULL_RE.match(line, pos)
    if full is not None:
        return f"expected ',' or '}}' at column {full.end() + 1}"
    if _PAIR_HEAD_RE.match(line, pos) is not None:
        return f"unterminated quoted label value at column {line.index(chr(34), pos) + 1}"
    return f"invalid label syntax at column {pos + 1}"


def _value_tail(rest: str) -> tuple[float, float | None]:
    """Value, then an optional timestamp and/or an exemplar (slow path of the value parse)."""
    parts = rest.split(None, 3)  # value, timestamp or '#', '#' (bounded on a huge line)
    n = len(parts)
    if not n:
        raise _Bad("missing value")
    v = parts[0]
    try:
        value = float(v)
    except ValueError:
        raise _Bad(f"invalid value {_snip(v)}") from None
    if "_" in v:
        raise _Bad(f"invalid value {_snip(v)}")
    if n == 1:
        return value, None
    t = parts[1]
    if t[0] == "#":
        return value, None  # exemplar, dropped
    if n > 2 and parts[2][0] != "#":
        raise _Bad(f"unexpected text after timestamp: {_snip(parts[2])}")
    try:
        ts = float(t)
    except ValueError:
        raise _Bad(f"invalid timestamp {_snip(t)}") from None
    if "_" in t or ts != ts or ts == _INF or ts == -_INF:
        raise _Bad(f"invalid timestamp {_snip(t)}")
    return value, ts


def _labels_regex(line: str, brace: int) -> tuple[dict[str, str], int]:
    """The general label-set parser (whitespace, escapes, trailing comma, ``{}``, errors):
    the labels of the set opening at ``brace`` and the index just past its ``}``."""
    labels: dict[str, str] = {}
    pos = brace + 1
    close = _CLOSE_RE.match(line, pos)
    if close is not None:
        return labels, close.end()
    match = _PAIR_RE.match
    while True:
        m = match(line, pos)
        if m is None:
            raise _Bad("bad label set: " + _label_error(line, pos))
        k, v, sep = m.groups()
        if k in labels:
            raise _Bad(f"duplicate label name (at column {m.start(1) + 1})")
        labels[k] = _unescape(v)
        pos = m.end()
        if sep == "}":
            return labels, pos
        close = _CLOSE_RE.match(line, pos)  # a trailing comma
        if close is not None:
            return labels, close.end()


class _FirstSep(dict):
    """``'name='`` → ``name``; anything else raises KeyError (memoised validation)."""

    def __missing__(self, key: str) -> str:
        m = _FIRST_SEP_RE.match(key)
        if m is None:
            raise KeyError(key)
        self[key] = name = m.group(1)
        return name


class _CommaSep(dict):
    """``',name='`` → ``name``; anything else raises KeyError (memoised validation)."""

    def __missing__(self, key: str) -> str:
        m = _COMMA_SEP_RE.match(key)
        if m is None:
            raise KeyError(key)
        self[key] = name = m.group(1)
        return name


_FIRST_SEP_RE = re.compile(r"(" + LABEL_NAME + r")=\Z")
_COMMA_SEP_RE = re.compile(r",(" + LABEL_NAME + r")=\Z")


def _split_labels(key: str, first: _FirstSep, comma: _CommaSep) -> dict[str, str] | None:
    """Labels of ``key`` = ``'n="v",...,n="v'`` (no backslash), or None to use the regex parser.

    Without a backslash every '"' delimits a value, so splitting on it alternates separators
    (``n=``, then ``,n=``; validated through memoised lookups) and values.
    """
    p = key.split('"')
    n = len(p)
    if n & 1:
        return None
    try:
        labels = {first[p[0]]: p[1]}
        for i in range(2, n, 2):
            labels[comma[p[i]]] = p[i + 1]
    except KeyError:
        return None
    if len(labels) != n >> 1:
        return None  # duplicate label name: let the regex parser report it
    return labels


class _Builder:
    """Declarations and the name → samples-list lookup table (the non-hot part of parsing)."""

    __slots__ = ("keep", "fams", "lookup", "by_raw", "typed", "exact", "implicit", "reg", "cache",
                 "first_sep", "comma_sep", "uncached")

    def __init__(self, keep: Container[str] | None) -> None:
        self.keep = keep
        self.fams: dict[str, MetricFamily] = {}
        # sample name -> the samples list to append to, or _SKIP
        self.lookup: dict[str, list[Sample]] = {}
        self.by_raw: dict[str, MetricFamily] = {}  # declared name (as in HELP/TYPE) -> family
        self.typed: set[str] = set()  # declared names that had a TYPE line
        self.exact: set[str] = set()  # every declared name
        self.implicit: dict[str, MetricFamily] = {}  # undeclared (untyped) families
        self.reg: dict[str, tuple[list[str], list[Sample], str | None]] = {}
        # '{n="v",...,n="v"' (up to the closing '"}') -> its labels: a pure memo (parsing a label
        # set does not depend on what follows it); bodies repeat label sets across families.
        self.cache: dict[str, dict[str, str]] = {}
        self.first_sep = _FirstSep()
        self.comma_sep = _CommaSep()
        self.uncached: list[dict[str, str]] = []  # kept label sets not in ``cache`` (limit checks)

    # -- comment lines --------------------------------------------------------------------------
    def comment(self, line: str, idx: int) -> bool:
        """Handle a ``#`` line; True at ``# EOF``."""
        parts = line.split(None, 3)
        if len(parts) < 2 or parts[0] != "#":
            return False
        kw = parts[1]
        keep = self.keep
        if keep is not None and len(parts) >= 3 and (kw == "HELP" or kw == "TYPE"):
            # a family nobody reads: its HELP/TYPE is not processed beyond claiming its exact name
            # (so prometheus_client's separate ``x_created`` gauge family is never filed under a
            # kept counter ``x``); its other samples look undeclared and are dropped by name.
            raw = parts[2]
            if raw not in keep and not (
                (raw.endswith("_total") and raw[:-6] in keep) or (raw.endswith("_info") and raw[:-5] in keep)
            ):
                self.exact.add(raw)
                self.lookup[raw] = _SKIP
                return False
        if kw == "HELP":
            if len(parts) < 3:
                raise ParseError("HELP line without a metric name", idx + 1)
            raw = self._name(parts[2], idx)
            doc = _unescape(parts[3]) if len(parts) == 4 else ""
            fam = self.by_raw.get(raw)
            if fam is None:
                fam = MetricFamily(raw, "untyped", doc)
                self.by_raw[raw] = fam
                self._register(fam, raw, "untyped", idx)
            else:
                fam.help = doc
        elif kw == "TYPE":
            if len(parts) < 4:
                raise ParseError(f"TYPE line needs a name and a type: {_snip(line)}", idx + 1)
            raw = self._name(parts[2], idx)
            words = parts[3].split(None, 1)
            typ = words[0].lower()
            if len(words) != 1 or typ not in _SUFFIXES:
                raise ParseError(f"invalid TYPE {_snip(parts[3])}", idx + 1)
            fam = self.by_raw.get(raw)
            if fam is None:
                fam = MetricFamily(raw, typ)
                self.by_raw[raw] = fam
            elif raw in self.typed:
                if fam.type != typ:
                    raise ParseError(f"a second TYPE for one family: {typ} after {fam.type}", idx + 1)
                return False
            self.typed.add(raw)
            self._register(fam, raw, typ, idx)
        elif kw == "EOF" and len(parts) == 2:
            return True
        return False

    @staticmethod
    def _name(name: str, idx: int) -> str:
        if _METRIC_NAME_RE.match(name) is None:
            raise ParseError(f"invalid metric name {_snip(name)}", idx + 1)
        return name

    def _register(self, fam: MetricFamily, raw: str, typ: str, idx: int) -> None:
        lookup = self.lookup
        prev = self.reg.get(raw)
        if prev is not None:  # HELP came first: undo its registration
            names, target, key = prev
            for n in names:
                if lookup.get(n) is target:
                    del lookup[n]
            if key is not None and self.fams.get(key) is fam:
                del self.fams[key]
        base = raw
        if typ == "counter" and raw.endswith("_total"):
            base = raw[:-6]
        elif typ == "info" and raw.endswith("_info"):
            base = raw[:-5]
        fam.name = base
        fam.type = typ
        kept = self.keep is None or base in self.keep
        target = fam.samples if kept else _SKIP
        names = [base + s for s in _SUFFIXES[typ]]
        for n in names:  # undeclared samples seen before this TYPE belong here
            imp = self.implicit.pop(n, None)
            if imp is not None:
                if self.fams.get(n) is imp:
                    del self.fams[n]
                if kept:
                    fam.samples.extend(imp.samples)
        key = None
        if kept:
            other = self.fams.get(base)
            if other is not None and other is not fam:
                raise ParseError(f"a family declared twice ({other.type} and {typ})", idx + 1)
            self.fams[base] = fam
            key = base
        self.exact.add(raw)
        exact = self.exact
        for n in names:
            if n == raw or n not in exact:
                lookup[n] = target
        self.reg[raw] = (names, target, key)

    # -- samples without a declaration ----------------------------------------------------------
    def undeclared(self, name: str) -> list[Sample]:
        if _METRIC_NAME_RE.match(name) is None:
            raise _Bad(f"invalid metric name {_snip(name)}")
        if self.keep is not None and name not in self.keep:
            self.lookup[name] = _SKIP
            return _SKIP
        other = self.fams.get(name)
        if other is not None:
            raise _Bad(f"a sample named like a {other.type} family it does not belong to")
        fam = MetricFamily(name, "untyped")
        self.fams[name] = fam
        self.implicit[name] = fam
        self.lookup[name] = fam.samples
        return fam.samples

    def sample(self, line: str) -> tuple[list[Sample], str, dict[str, str], str] | None:
        """General path of a sample line: (target, name, labels, rest of line), or None to skip."""
        lookup = self.lookup
        target: list[Sample] | None = None
        brace = line.find("{")
        if brace != -1:
            name = line[:brace]
            target = lookup.get(name)
            if target is None:
                name = name.rstrip(" \t")
                if " " in name or "\t" in name:
                    brace = -1  # the brace is an exemplar's: a line without labels
                elif not name:
                    raise _Bad("missing metric name")
                else:
                    target = lookup.get(name)
                    if target is None:
                        target = self.undeclared(name)
        if brace == -1:
            parts = line.split(None, 1)
            name = parts[0]
            target = lookup.get(name)
            if target is None:
                target = self.undeclared(name)
            if target is _SKIP:
                return None
            return target, name, {}, parts[1] if len(parts) == 2 else ""
        if target is _SKIP:
            return None
        # The cache maps the text between '{' and the first '"}' to its labels: a pure memo
        # (parsing a label set does not depend on what follows it), used by parse()'s hot path.
        close = line.find('"}')
        if close > brace:
            key = line[brace + 1 : close]
            labels = self.cache.get(key)
            if labels is not None:
                return target, name, labels.copy(), line[close + 2 :]  # type: ignore[return-value]
            if "\\" not in key:
                labels = _split_labels(key, self.first_sep, self.comma_sep)
                if labels is not None:
                    self.cache[key] = labels
                    return target, name, labels, line[close + 2 :]  # type: ignore[return-value]
        labels, end = _labels_regex(line, brace)
        if close > brace and end == close + 2:  # (not when that '"}' is inside an exemplar)
            self.cache[line[brace + 1 : close]] = labels
        else:
            self.uncached.append(labels)
        return target, name, labels, line[end:]  # type: ignore[return-value]


def _sample_lines(lines: list[str]) -> int:
    """How many of ``lines`` are samples (not blank, not a comment)."""
    n = 0
    for line in lines:
        if line and (line[0] > "#" or (line[0] != "#" and line.lstrip()[:1] not in ("", "#"))):
            n += 1
    return n


def _check_labels(label_sets: list[dict[str, str]], limits: SeriesLimits) -> None:
    most, name_len, value_len = limits.labels, limits.label_name_length, limits.label_value_length
    for labels in label_sets:
        if most and len(labels) > most:
            raise LimitError(f"label_limit exceeded: a series with {len(labels)} labels (limit {most})")
        for k, v in labels.items():
            if name_len and len(k) > name_len:
                raise LimitError(f"label_name_length_limit exceeded: a {len(k)}-character label name "
                                 f"(limit {name_len})")
            if value_len and len(v) > value_len:
                raise LimitError(f"label_value_length_limit exceeded: a {len(v)}-character label value "
                                 f"(limit {value_len})")


def parse(text: str | bytes, keep: Container[str] | None = None,
          limits: SeriesLimits | None = None) -> dict[str, MetricFamily]:
    """Parse an exposition body into ``{base name: MetricFamily}`` (see the module docstring)."""
    if not isinstance(text, str):
        text = _decode(bytes(text))
    if text[:1] == "\ufeff":
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if limits is not None and limits.samples and len(lines) > limits.samples:
        n = _sample_lines(lines)
        if n > limits.samples:
            raise LimitError(f"sample_limit exceeded: {n} samples in the body (limit {limits.samples})")
    b = _Builder(keep)
    lookup_get = b.lookup.get
    cache = b.cache
    cache_get = cache.get
    first_sep = b.first_sep
    comma_sep = b.comma_sep
    new = tuple.__new__
    # duplicate series: the hot paths' kept samples by their text up to the labels' end (one
    # set add each; 'name{labels' or 'name'), the general path's by name and labels
    seen: set[str] = set()
    seen_add = seen.add
    hot = 0
    general: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    idx = 0
    try:
        for idx, line in enumerate(lines):  # noqa: B007 (idx is read by the except clauses)
            if not line:
                continue
            if line[0] <= "#":  # rare: leading whitespace, a comment, or garbage
                line = line.strip()
                if not line:
                    continue
                if line[0] == "#":
                    if b.comment(line, idx):
                        for j in range(idx + 1, len(lines)):
                            if lines[j].strip():
                                raise ParseError("content after # EOF", j + 1)
                        break
                    continue
            head, sep, rest = line.partition('"}')
            if sep:  # hot path: 'name{labels"} value', a known name, a label set seen before
                name, sep, key = head.partition("{")
                target = lookup_get(name)
                if target is _SKIP:
                    continue
                labels = cache_get(key)
                if labels is not None:
                    labels = labels.copy()
                elif target is not None and sep and "\\" not in key:
                    labels = _split_labels(key, first_sep, comma_sep)
                    if labels is not None:
                        cache[key] = labels
                if labels is not None and target is not None:
                    try:
                        value = float(rest)
                    except ValueError:
                        value, ts = _value_tail(rest)
                    else:
                        ts = None
                        if "_" in rest:
                            raise _Bad(f"invalid value {_snip(rest.strip())}")
                    target.append(new(Sample, (name, labels, value, ts)))
                    seen_add(head)
                    hot += 1
                    continue
            else:  # hot path: 'name value'
                parts = line.split(None, 2)
                if len(parts) == 2:
                    name = parts[0]
                    target = lookup_get(name)
                    if target is _SKIP:
                        continue
                    if target is not None:
                        v = parts[1]
                        value = float(v)
                        if "_" in v:
                            raise _Bad(f"invalid value {_snip(v)}")
                        target.append(new(Sample, (name, {}, value, None)))
                        seen_add(name)
                        hot += 1
                        continue
            got = b.sample(line)
            if got is None:
                continue
            target, name, labels, rest = got
            value, ts = _value_tail(rest)
            target.append(new(Sample, (name, labels, value, ts)))
            general.append((name, tuple(labels.items())))
    except ParseError:
        raise
    except _Bad as e:
        raise ParseError(str(e), idx + 1) from None
    except ValueError:
        raise ParseError("invalid sample value", idx + 1) from None
    if len(seen) != hot or len(set(general)) != len(general):
        raise LimitError("duplicate series: a series (name and labels) appears twice in the body")
    if limits is not None and (limits.labels or limits.label_name_length or limits.label_value_length):
        # every kept label set is in the memo (each distinct one once) or in ``uncached``; a
        # set's text bounds its label count and every name and value length
        bound = min(x for x in (limits.labels * 4, limits.label_name_length, limits.label_value_length) if x)
        _check_labels([v for k, v in cache.items() if len(k) > bound], limits)
        _check_labels(b.uncached, limits)
    return b.fams
