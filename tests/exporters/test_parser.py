"""exporters.parser: hand-written cases, error cases, and property tests against prometheus_client."""

from __future__ import annotations

import math
import tracemalloc

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import generate_latest as generate_004
from prometheus_client.openmetrics.exposition import generate_latest as generate_om
from prometheus_client.openmetrics.parser import text_string_to_metric_families as ref_om
from prometheus_client.parser import text_string_to_metric_families as ref_004

from exporters.families import MetricFamily, ParseError, Sample
from exporters.parser import parse


def _eq(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _samples(fam: MetricFamily) -> list[tuple[str, dict[str, str], float, float | None]]:
    return [(s.name, s.labels, s.value, s.timestamp) for s in fam.samples]


def _one(text: str, name: str, **kw: object) -> MetricFamily:
    fams = parse(text, **kw)  # type: ignore[arg-type]
    assert name in fams, sorted(fams)
    return fams[name]


def _err(text: str | bytes) -> ParseError:
    with pytest.raises(ParseError) as ei:
        parse(text)
    assert f"line {ei.value.lineno}" in str(ei.value)
    return ei.value


# -- HELP / TYPE / family naming -----------------------------------------------------------------
def test_prometheus_004_counter_histogram_gauge_summary() -> None:
    text = """# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1.6098419e+07
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e+09
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# HELP lat Latency.
# TYPE lat histogram
lat_bucket{le="0.1"} 1.0
lat_bucket{le="+Inf"} 2.0
lat_count 2.0
lat_sum 0.35
# HELP size Size.
# TYPE size summary
size{quantile="0.5"} 10
size_count 4
size_sum 40
"""
    fams = parse(text)
    assert list(fams) == ["vllm:prompt_tokens", "vllm:prompt_tokens_created",
                          "vllm:num_requests_running", "lat", "size"]
    c = fams["vllm:prompt_tokens"]
    assert (c.name, c.type, c.help) == ("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.")
    assert _samples(c) == [("vllm:prompt_tokens_total", {"engine": "0", "model_name": "m"}, 16098419.0, None)]
    assert fams["vllm:prompt_tokens_created"].type == "gauge"
    assert fams["vllm:num_requests_running"].samples[0].value == 3.0
    h = fams["lat"]
    assert h.type == "histogram"
    assert [s.name for s in h.samples] == ["lat_bucket", "lat_bucket", "lat_count", "lat_sum"]
    assert h.samples[1].labels == {"le": "+Inf"}
    s = fams["size"]
    assert [(x.name, x.labels, x.value) for x in s.samples] == [
        ("size", {"quantile": "0.5"}, 10.0), ("size_count", {}, 4.0), ("size_sum", {}, 40.0)]
    assert all(isinstance(x, Sample) for f in fams.values() for x in f.samples)


def test_openmetrics_counter_base_name_and_created_in_family() -> None:
    text = """# TYPE vllm:prompt_tokens counter
# HELP vllm:prompt_tokens Number of prefill tokens processed.
vllm:prompt_tokens_total{model_name="m"} 5.0
vllm:prompt_tokens_created{model_name="m"} 1.7e+09
# TYPE ttft histogram
ttft_bucket{le="1.0"} 1
ttft_bucket{le="+Inf"} 1
ttft_count 1
ttft_sum 0.5
ttft_created 1.7e+09
# TYPE build info
build_info{version="1.2"} 1
# TYPE state stateset
state{state="a"} 1
state{state="b"} 0
# TYPE q gaugehistogram
q_bucket{le="+Inf"} 3
q_gcount 3
q_gsum 1.5
# TYPE u unknown
u 7
# EOF
"""
    fams = parse(text)
    assert list(fams) == ["vllm:prompt_tokens", "ttft", "build", "state", "q", "u"]
    c = fams["vllm:prompt_tokens"]
    assert c.type == "counter" and c.help == "Number of prefill tokens processed."
    assert [s.name for s in c.samples] == ["vllm:prompt_tokens_total", "vllm:prompt_tokens_created"]
    assert [s.name for s in fams["ttft"].samples][-1] == "ttft_created"
    assert _samples(fams["build"]) == [("build_info", {"version": "1.2"}, 1.0, None)]
    assert fams["state"].type == "stateset" and len(fams["state"].samples) == 2
    assert [s.name for s in fams["q"].samples] == ["q_bucket", "q_gcount", "q_gsum"]
    assert fams["u"].type == "unknown"


def test_tgi_counter_without_total() -> None:
    text = "# TYPE tgi_request_count counter\ntgi_request_count 5\n\n# TYPE tgi_queue_size gauge\ntgi_queue_size 2\n"
    fams = parse(text)
    assert set(fams) == {"tgi_request_count", "tgi_queue_size"}
    assert _samples(fams["tgi_request_count"]) == [("tgi_request_count", {}, 5.0, None)]
    assert fams["tgi_request_count"].type == "counter"
    assert fams["tgi_request_count"].help == ""


def test_help_optional_any_order_and_escapes() -> None:
    text = (
        "# TYPE a gauge\n# HELP a back\\\\slash, new\\nline, quote \\\" and \\t kept\na 1\n"
        "# HELP b only help\nb 2\n"
        "# HELP c \n# TYPE c gauge\nc 3\n"
    )
    fams = parse(text)
    assert fams["a"].help == 'back\\slash, new\nline, quote " and \\t kept'
    assert (fams["b"].type, fams["b"].help) == ("untyped", "only help")
    assert (fams["c"].type, fams["c"].help) == ("gauge", "")


def test_comments_blank_lines_unit_and_whitespace() -> None:
    text = (
        "# a comment\n#\n\n   \n# UNIT x_seconds seconds\n# TYPE x_seconds gauge\n"
        "  x_seconds   1.5  \n\tx_seconds{a=\"b\"}\t2\n# TYPE\tcounter_name_total\tcounter\n"
        "counter_name_total 1\n"
    )
    fams = parse(text)
    assert [s.value for s in fams["x_seconds"].samples] == [1.5, 2.0]
    assert fams["x_seconds"].samples[1].labels == {"a": "b"}
    assert fams["counter_name"].samples[0].value == 1.0


def test_crlf_bom_and_bytes() -> None:
    text = "\ufeff# TYPE a gauge\r\na{x=\"1\"} 1\r\na{x=\"2\"} 2\r\n"
    for body in (text, text.encode("utf-8")):
        fam = parse(body)["a"]
        assert [(s.labels, s.value) for s in fam.samples] == [({"x": "1"}, 1.0), ({"x": "2"}, 2.0)]
    assert parse(b"m{l=\"\xc3\xa9\"} 1")["m"].samples[0].labels == {"l": "\u00e9"}


def test_type_keyword_case_insensitive() -> None:
    assert parse("# TYPE a COUNTER\na_total 1\n")["a"].type == "counter"


# -- samples, labels, values ---------------------------------------------------------------------
def test_label_escapes_and_special_characters() -> None:
    text = (
        '# TYPE m gauge\n'
        'm{a="x\\\\y",b="say \\"hi\\"",c="l1\\nl2",d="{,}#=",e="",f="\\t"} 1\n'
        'm{ z = "1" , a="2" , } 2\n'
        'm{} 3\n'
        'm{q="\\"}"} 4\n'
        'm{u="\u65e5\u672c \U0001f600"} 5\n'
    )
    fam = parse(text)["m"]
    assert fam.samples[0].labels == {"a": "x\\y", "b": 'say "hi"', "c": "l1\nl2", "d": "{,}#=",
                                     "e": "", "f": "\\t"}
    assert fam.samples[1].labels == {"z": "1", "a": "2"}
    assert list(fam.samples[1].labels) == ["z", "a"]
    assert fam.samples[2].labels == {}
    assert fam.samples[3].labels == {"q": '"}'}
    assert fam.samples[4].labels == {"u": "\u65e5\u672c \U0001f600"}


def test_label_order_and_shared_label_sets_are_independent() -> None:
    text = '# TYPE a gauge\n# TYPE b gauge\na{x="1",y="2"} 1\nb{y="2",x="1"} 2\nb{x="1",y="2"} 3\n'
    fams = parse(text)
    assert fams["a"].samples[0].labels == fams["b"].samples[0].labels == fams["b"].samples[1].labels
    fams["a"].samples[0].labels["x"] = "changed"
    assert fams["b"].samples[1].labels == {"x": "1", "y": "2"}


@pytest.mark.parametrize(("raw", "value"), [
    ("NaN", math.nan), ("+Inf", math.inf), ("-Inf", -math.inf), ("Inf", math.inf),
    ("1.6098419e+07", 16098419.0), ("1e-05", 1e-05), ("42", 42.0), ("-3", -3.0), ("0.5", 0.5),
    ("1.5E+010", 1.5e10), (".5", 0.5),
])
def test_values(raw: str, value: float) -> None:
    for line in (f"m {raw}", f'm{{a="b"}} {raw}'):
        got = parse(line)["m"].samples[0].value
        assert _eq(got, value), (line, got)


def test_timestamps_kept_as_written() -> None:
    text = 'a 1 1700000000000\na{x="y"} 2 -5\n# TYPE b gauge\nb 3 1700000000.123\n'
    fams = parse(text)
    assert [s.timestamp for s in fams["a"].samples] == [1700000000000.0, -5.0]
    assert fams["b"].samples[0].timestamp == 1700000000.123


def test_exemplars_dropped() -> None:
    text = """# TYPE h histogram
h_bucket{le="1.0"} 3 # {trace_id="a b}c"} 0.5 123.4
h_bucket{le="+Inf"} 4 1700000000 # {trace_id="x"} 2
h_count 4 # {trace_id="z"} 1
# TYPE c counter
c_total 7 # {trace_id="q"} 1.0
c_total{a="b",} 8 # {trace_id="q"} 1.0
# EOF
"""
    fams = parse(text)
    assert _samples(fams["h"]) == [("h_bucket", {"le": "1.0"}, 3.0, None),
                                   ("h_bucket", {"le": "+Inf"}, 4.0, 1700000000.0),
                                   ("h_count", {}, 4.0, None)]
    assert _samples(fams["c"]) == [("c_total", {}, 7.0, None), ("c_total", {"a": "b"}, 8.0, None)]


def test_eof_ends_body() -> None:
    fams = parse("# TYPE a gauge\na 1\n# EOF\n\n  \n")
    assert fams["a"].samples[0].value == 1.0
    assert parse("a 1\n# EOF")["a"].samples[0].value == 1.0


def test_sglang_multiprocess_non_contiguous_samples() -> None:
    text = """# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="m",pid="101",tp_rank="0"} 3.0
# HELP sglang:e2e_request_latency_seconds Histogram of End-to-end request latency in seconds
# TYPE sglang:e2e_request_latency_seconds histogram
sglang:e2e_request_latency_seconds_sum{engine_type="unified",model_name="m"} 10.0
sglang:e2e_request_latency_seconds_bucket{engine_type="unified",le="0.1",model_name="m"} 1.0
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{engine_type="unified",model_name="m"} 100.0
sglang:num_running_reqs{engine_type="unified",model_name="m",pid="102",tp_rank="1"} 4.0
sglang:e2e_request_latency_seconds_bucket{engine_type="unified",le="+Inf",model_name="m"} 2.0
sglang:e2e_request_latency_seconds_count{engine_type="unified",model_name="m"} 2.0
sglang:num_running_reqs{engine_type="unified",model_name="m",pid="103",tp_rank="2"} 5.0
"""
    fams = parse(text)
    assert list(fams) == ["sglang:num_running_reqs", "sglang:e2e_request_latency_seconds", "sglang:prompt_tokens"]
    run = fams["sglang:num_running_reqs"]
    assert [(s.labels["pid"], s.value) for s in run.samples] == [("101", 3.0), ("102", 4.0), ("103", 5.0)]
    hist = fams["sglang:e2e_request_latency_seconds"]
    assert [s.name.rsplit("_", 1)[1] for s in hist.samples] == ["sum", "bucket", "bucket", "count"]
    assert fams["sglang:prompt_tokens"].samples[0].value == 100.0


def test_untyped_samples() -> None:
    text = 'foo 1\nbar{a="1"} 2\nfoo{b="c"} 3\nbar{a="2"} 4\n# TYPE g gauge\ng 5\ng_total 6\n'
    fams = parse(text)
    assert list(fams) == ["foo", "bar", "g", "g_total"]
    assert (fams["foo"].type, [s.value for s in fams["foo"].samples]) == ("untyped", [1.0, 3.0])
    assert [s.labels for s in fams["bar"].samples] == [{"a": "1"}, {"a": "2"}]
    assert fams["g_total"].type == "untyped"


def test_late_type_adopts_earlier_samples() -> None:
    fams = parse('x_total{a="1"} 1\n# TYPE x_total counter\nx_total{a="2"} 2\n')
    assert list(fams) == ["x"]
    assert (fams["x"].type, [s.value for s in fams["x"].samples]) == ("counter", [1.0, 2.0])


def test_declared_name_wins_over_suffix() -> None:
    # a histogram "a" and a separately declared gauge "a_count": a_count samples are the gauge's
    text = "# TYPE a histogram\n# TYPE a_count gauge\na_count 5\na_sum 1\n"
    fams = parse(text)
    assert _samples(fams["a"]) == [("a_sum", {}, 1.0, None)]
    assert _samples(fams["a_count"]) == [("a_count", {}, 5.0, None)]


def test_repeated_identical_type_is_accepted() -> None:
    fams = parse("# TYPE a gauge\na{p=\"1\"} 1\n# TYPE a gauge\na{p=\"2\"} 2\n")
    assert [s.labels["p"] for s in fams["a"].samples] == ["1", "2"]


def test_empty_body() -> None:
    assert parse("") == {}
    assert parse(b"\n\n") == {}


def test_families_without_samples_are_kept() -> None:
    fams = parse("# HELP a A.\n# TYPE a counter\n")
    assert (fams["a"].type, fams["a"].samples) == ("counter", [])


# -- keep ----------------------------------------------------------------------------------------
KEEP_BODY = """# HELP vllm:prompt_tokens_total P.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="m"} 5
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{model_name="m"} 1.7e9
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 10
# TYPE h histogram
h_bucket{model_name="m",le="+Inf"} 1
h_count{model_name="m"} 1
stray 3
kept_stray{a="b"} 4
python_gc_objects_collected_total{generation="1"} 11
"""


def test_keep_returns_exactly_the_kept_families() -> None:
    full = parse(KEEP_BODY)
    keep = {"vllm:prompt_tokens", "h", "kept_stray", "absent"}
    kept = parse(KEEP_BODY, keep=keep)
    assert list(kept) == ["vllm:prompt_tokens", "h", "kept_stray"]
    for name, fam in kept.items():
        assert fam == full[name]
    assert parse(KEEP_BODY, keep=frozenset()) == {}
    assert parse(KEEP_BODY, keep=["h"]) == {"h": full["h"]}


def test_keep_decides_on_the_base_name_after_help() -> None:
    # HELP names the family "x_total" first; the TYPE makes it the counter "x"
    text = "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n"
    assert _samples(_one(text, "x", keep={"x"})) == [("x_total", {}, 1.0, None)]
    assert parse(text, keep={"x_total"}) == {}


def test_keep_does_not_tokenise_dropped_lines() -> None:
    # Malformed lines of dropped families are not even looked at beyond their name.
    text = '# TYPE a gauge\n# TYPE b gauge\na{x="1"} 1\nb{x=oops} 1\nb not-a-number\n'
    assert _samples(parse(text, keep={"a"})["a"]) == [("a", {"x": "1"}, 1.0, None)]
    with pytest.raises(ParseError):
        parse(text)


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "lineno", "fragment"), [
    ('# TYPE a gauge\na{b=c} 1\n', 2, "label"),
    ('a 1\na{b="c} 1\n', 2, "unterminated"),
    ('a{b="c" d="e"} 1\n', 1, "expected"),
    ('a{b="c",,d="e"} 1\n', 1, "empty label term"),
    ('a{,} 1\n', 1, "label"),
    ('a{b="1",b="2"} 1\n', 1, "duplicate label"),
    ('a{1b="1"} 1\n', 1, "label"),
    ('a{b="1"\n', 1, "label"),
    ("a 1\n\na abc\n", 3, "invalid"),
    ('a{b="1"} abc\n', 1, "invalid"),
    ("a 1_000\n", 1, "invalid value"),
    ('a{b="1"} 1_000\n', 1, "invalid value"),
    ("a\n", 1, "missing value"),
    ('a{b="1"}\n', 1, "missing value"),
    ("a 1 2 3\n", 1, "after timestamp"),
    ("a 1 x\n", 1, "timestamp"),
    ("a 1 NaN\n", 1, "timestamp"),
    ("# TYPE a gauge\n# TYPE b countr\n", 2, "invalid TYPE"),
    ("# TYPE a\n", 1, "TYPE"),
    ("# TYPE a gauge extra\n", 1, "invalid TYPE"),
    ("# HELP\n", 1, "HELP"),
    ("# TYPE 1a gauge\n", 1, "invalid metric name"),
    ("a 1\n# EOF\nb 2\n", 3, "after # EOF"),
    ("a 1\n# EOF\n\n \nb 2", 5, "after # EOF"),
    ("1a 1\n", 1, "invalid metric name"),
    ("a-b 1\n", 1, "invalid metric name"),
    ('{a="b"} 1\n', 1, "missing metric name"),
    ("# TYPE a gauge\n# TYPE a counter\n", 2, "second TYPE"),
    ("# TYPE a gauge\n# TYPE a_total counter\n", 2, "declared twice"),
    ("# TYPE a histogram\na 1\n", 2, "does not belong"),
    (b"a 1\nb{x=\"\xff\"} 2\n", 2, "UTF-8"),
])
def test_errors(text: str | bytes, lineno: int, fragment: str) -> None:
    err = _err(text)
    assert err.lineno == lineno, str(err)
    assert fragment.lower() in err.message.lower(), str(err)
    assert isinstance(err, ValueError)


def test_error_message_is_bounded() -> None:
    err = _err("a " + "x" * 100_000)
    assert len(str(err)) < 300


# -- big inputs: linear time, bounded memory (no timing assertions) ------------------------------
TEN_MB = 10 * 1024 * 1024


def test_ten_megabyte_valid_body() -> None:
    block = ("# HELP m_total M.\n# TYPE m_total counter\n"
             + "".join(f'm_total{{i="{i}",model_name="some/model"}} {i}.5\n' for i in range(1000)))
    unit = len(block)
    text = "".join(block.replace("m_total", f"m{k}_total") for k in range(TEN_MB // unit + 1))
    assert len(text) >= TEN_MB
    fams = parse(text)
    assert len(fams) == TEN_MB // unit + 1
    assert fams["m0"].samples[999].value == 999.5
    kept = parse(text, keep={"m3"})
    assert list(kept) == ["m3"] and len(kept["m3"].samples) == 1000


@pytest.mark.parametrize("garbage", [
    "x" * TEN_MB,
    "a{" + 'b="c",' * (TEN_MB // 6),
    'a{b="' + "c" * TEN_MB,
    'a{b="' + '\\"' * (TEN_MB // 2) + "} 1",
    'a{b="' + '\\"' * (TEN_MB // 2) + '"} 1 2 3',
    "a{" + 'b="c" ' * (TEN_MB // 6),
    "a{" + "b" * TEN_MB + "} 1",
    'a{b="c"} ' + "1" * TEN_MB + "x",
    "# TYPE a " + "g" * TEN_MB,
    "{" * TEN_MB,
    '"}' * (TEN_MB // 2),
])
def test_ten_megabyte_garbage_line_raises(garbage: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as ei:
            parse(garbage)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ei.value.lineno == 1
    assert len(str(ei.value)) < 300
    assert peak < 8 * len(garbage), peak  # a few copies of the line, no per-character state


def test_ten_megabyte_label_set() -> None:
    line = "m{" + ",".join(f'l{i}="v{i}"' for i in range(TEN_MB // 16)) + "} 1\n"
    assert len(line) >= TEN_MB // 2
    labels = parse(line)["m"].samples[0].labels
    assert len(labels) == TEN_MB // 16 and labels["l7"] == "v7"
    with pytest.raises(ParseError):
        parse(line.replace("} 1", " 1"))


# -- property tests against prometheus_client ----------------------------------------------------
_NAME = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
# prometheus_client's OpenMetrics writer turns ':' into '_' in sample names but not in TYPE lines
_OM_NAME = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
_LABEL = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("le", "quantile"))
_TEXT = st.lists(
    st.one_of(
        st.sampled_from(['"', "\\", "\n", "{", "}", ",", "=", "#", " ", "\t", '"}', "\\n", '\\"}']),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=8,
).map("".join)
_DOC = st.text(
    alphabet=st.one_of(st.sampled_from(['"', "\\", "\n", "{", "}", ",", "#", " "]),
                       st.characters(whitelist_categories=("L", "N", "P", "S"))),
    min_size=1, max_size=20,
).map(lambda s: "d" + s.strip() + "d")
_ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([0.0, -0.0, 1e21, 1e-7, 123456789.0]))
_POS_FLOAT = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def _registry(draw: st.DrawFn, openmetrics: bool) -> CollectorRegistry:
    reg = CollectorRegistry()
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["counter", "gauge", "histogram", "summary"]))
        name = draw(_OM_NAME if openmetrics else _NAME)
        labelnames = draw(st.lists(_LABEL, max_size=3, unique=True))
        doc = draw(_DOC)
        try:
            if kind == "counter":
                metric = Counter(name, doc, labelnames, registry=reg)
            elif kind == "gauge":
                metric = Gauge(name, doc, labelnames, registry=reg)
            elif kind == "histogram":
                buckets = sorted(set(draw(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=4))))
                metric = Histogram(name, doc, labelnames, buckets=buckets, registry=reg)
            else:
                metric = Summary(name, doc, labelnames, registry=reg)
        except ValueError:  # clashing or invalid names: prometheus_client refuses them
            continue
        for _ in range(draw(st.integers(0 if labelnames else 1, 3))):
            child = metric.labels(*[draw(_TEXT) for _ in labelnames]) if labelnames else metric
            if kind == "counter":
                child.inc(draw(_POS_FLOAT))
            elif kind == "gauge":
                child.set(draw(_POS_FLOAT if openmetrics and draw(st.booleans()) else _ANY_FLOAT))
            else:
                for _ in range(draw(st.integers(0, 3))):
                    child.observe(draw(_POS_FLOAT if openmetrics else _ANY_FLOAT))
    return reg


def _compare(ours: dict[str, MetricFamily], ref: list) -> None:  # noqa: ANN001
    merged: dict[str, tuple[str, str, list]] = {}
    for m in ref:
        if m.name in merged:  # the 0.0.4 reference splits a family only for untyped samples
            merged[m.name][2].extend(m.samples)
        else:
            merged[m.name] = (m.type, m.documentation, list(m.samples))
    assert list(ours) == list(merged)
    for name, (typ, doc, samples) in merged.items():
        fam = ours[name]
        assert (fam.name, fam.type, fam.help) == (name, typ, doc)
        assert len(fam.samples) == len(samples), name
        for got, want in zip(fam.samples, samples, strict=True):
            assert (got.name, got.labels) == (want.name, want.labels)
            assert _eq(got.value, float(want.value)), (got, want)
            assert got.timestamp is None and want.timestamp is None


_SETTINGS = settings(max_examples=200, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(_registry(openmetrics=False))
def test_matches_prometheus_client_004(reg: CollectorRegistry) -> None:
    body = generate_004(reg)
    text = body.decode("utf-8")
    ours = parse(text)
    _compare(ours, list(ref_004(text)))
    assert parse(body) == ours or _same(parse(body), ours)


@_SETTINGS
@given(_registry(openmetrics=True))
def test_matches_prometheus_client_openmetrics(reg: CollectorRegistry) -> None:
    text = generate_om(reg).decode("utf-8")
    try:
        ref = list(ref_om(text))
    except ValueError:  # the reference is stricter than the format (e.g. NaN gauges are fine)
        assume(False)
    _compare(parse(text), ref)


def _same(a: dict[str, MetricFamily], b: dict[str, MetricFamily]) -> bool:
    if list(a) != list(b):
        return False
    for name in a:
        fa, fb = a[name], b[name]
        if (fa.name, fa.type, fa.help, len(fa.samples)) != (fb.name, fb.type, fb.help, len(fb.samples)):
            return False
        for x, y in zip(fa.samples, fb.samples, strict=True):
            if (x.name, x.labels, x.timestamp) != (y.name, y.labels, y.timestamp) or not _eq(x.value, y.value):
                return False
    return True


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_registry(openmetrics=False), st.data())
def test_keep_is_a_filter_of_the_full_parse(reg: CollectorRegistry, data: st.DataObject) -> None:
    text = generate_004(reg).decode("utf-8")
    full = parse(text)
    keep = set(data.draw(st.lists(st.sampled_from(sorted(full) or ["none"]), unique=True)))
    keep.add("not-a-family")
    kept = parse(text, keep=keep)
    assert _same(kept, {k: v for k, v in full.items() if k in keep})
