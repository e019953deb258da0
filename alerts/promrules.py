"""inferwatch's rules as Prometheus rules over the ``inferwatch_*`` series ``/metrics`` exports
(``inferwatch prometheus-rules``). Pure: rules and SLOs in, YAML-ready mappings out.

* Threshold rules (the default pack with overrides and per-backend thresholds, and user rules)
  become alerting rules with the same name, ``for``, ``keep_firing_for``, severity, labels and
  annotations (templates translated: ``{{ backend }}`` -> ``{{ $labels.backend }}``,
  ``{{ value | percent }}`` -> ``{{ $value | humanizePercentage }}`` …). A per-backend threshold
  is one more ``or`` branch selecting that backend; a selector becomes label matchers.
* Percentiles read the cumulative histograms (``histogram_quantile`` over ``rate`` of
  ``_bucket``), rates and ratios the cumulative counters, gauges the gauges.
* SLOs become recording rules of the bad-event ratio per alert window
  (``inferwatch_slo:error_ratio:rate<window>``) and the four multi-window multi-burn-rate
  alerts over them (Google SRE workbook, as inferwatch evaluates them, ``keep_firing_for: 5m``).
* What has no faithful PromQL form is listed with the reason (``Export.skipped``), never dropped
  silently: ``baseline(…)`` against a stored history is approximated with
  ``quantile_over_time``/``avg_over_time`` and says so in the rule's ``inferwatch_note``
  annotation; ``no_data: alerting`` (Prometheus would need ``absent()``) is noted likewise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alerts.rules import Baseline, Query, Rule, Selector, Term
from alerts.slo import SLO, AvailabilitySLI, LatencySLI, MWMBAlert, mwmb_alerts
from alerts.slo_data import BURN_KEEP_FIRING
from alerts.templates import format_duration, format_percent
from core import conventions as c
from core.units import format_number, format_window

__all__ = ["Export", "export_rules"]

#: a rule's last value of a gauge signal, as PromQL (``{sel}`` is where label matchers go)
_GAUGES: dict[str, str] = {
    "up": c.METRIC_BACKEND_UP + "{sel}",
    c.QUEUE_DEPTH: c.METRIC_QUEUE_DEPTH + "{sel}",
    c.REQUESTS_RUNNING: c.METRIC_REQUESTS_RUNNING + "{sel}",
    c.KV_CACHE_USAGE_RATIO: c.METRIC_KV_CACHE + "{sel}",
    "tokens_per_second": c.METRIC_TOKENS_PER_SECOND + "{sel}",
    "error_ratio": c.METRIC_ERROR_RATIO + "{sel}",
    "probe_success_ratio": c.METRIC_PROBE_SUCCESS + "{sel}",
    "gpu_memory_used_ratio": f"({c.METRIC_GPU_MEMORY_USED}{{sel}} / {c.METRIC_GPU_MEMORY_TOTAL}{{sel}})",
    "cert_expiry_days": f"(({c.METRIC_CERT_EXPIRY}{{sel}} - time()) / 86400)",
    "audit_check": c.METRIC_AUDIT_CHECK + "{sel}",
    # fails now and passed within the last 30 days (inferwatch's own evaluation asks its stored history)
    "audit_check_regressed": f"(({c.METRIC_AUDIT_CHECK}{{sel}} == bool 0) * "
                             f"(max_over_time({c.METRIC_AUDIT_CHECK}{{sel}}[30d]) == bool 1))",
}
_SEVERITY = {"page": "critical", "ticket": "warning"}
_FILTERS = {"duration": "humanizeDuration", "percent": "humanizePercentage", "humanize": "humanize"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*([A-Za-z_]+)\s*)?\}\}")


@dataclass
class Export:
    """The rule file's groups, and what could not be expressed (name -> reason)."""

    groups: list[dict[str, object]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, object]:
        return {"groups": self.groups}


class Unexpressible(ValueError):
    pass


def _quote(v: str) -> str:
    """A PromQL string literal."""
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _alternatives(values: Sequence[str]) -> str:
    """A regex matching exactly ``values`` (RE2 metacharacters escaped), as a PromQL literal."""
    return _quote("|".join(re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", v) for v in values))


def _matchers(selector: Selector) -> list[str]:
    out = []
    if selector.backend is not None:
        out.append(f"backend=~{_alternatives(selector.backend)}")
    out += [f"{k}={_quote(v)}" for k, v in sorted(selector.labels.items())]
    if selector.gpu is not None:
        out.append(f"uuid={_quote(selector.gpu)}" if selector.gpu.startswith("GPU-") else f"gpu={_quote(selector.gpu)}")
    return out


def _sel(matchers: Sequence[str]) -> str:
    return "{" + ",".join(matchers) + "}" if matchers else ""


def term_promql(term: Term, matchers: Sequence[str]) -> str:
    """One term of an expression as PromQL; ``Unexpressible`` with the reason otherwise."""
    sel = _sel(matchers)
    if isinstance(term, Baseline):
        current = f"avg_over_time({_gauge(term.signal, sel)}[{format_window(term.window)}])"
        stat = "quantile_over_time(0.5, " if term.stat == "median" else "avg_over_time("
        return f"({current} / {stat}{_gauge(term.signal, sel)}[{format_window(term.reference)}]))"
    q: Query = term
    w = format_window(q.window) if q.window is not None else ""
    if q.fn == "last":
        return _gauge(q.signal, sel)
    if q.fn == "avg":
        return f"avg_over_time({_gauge(q.signal, sel)}[{w}])"
    if q.fn in ("p50", "p95", "p99"):
        quantile = int(q.fn[1:]) / 100
        if q.signal in c.HISTOGRAM_METRICS:
            rate = f"rate({c.HISTOGRAM_METRICS[q.signal]}_bucket{sel}[{w}])"
            return f"histogram_quantile({quantile}, sum by (le, backend) ({rate}))"
        if q.signal == "probe_ttft_seconds" and q.window == 300.0:
            return f"{c.METRIC_PROBE_TTFT}{_sel([*matchers, f'quantile={_quote(repr(quantile))}'])}"
        raise Unexpressible(f"{q.fn}({q.signal}[{w}]): /metrics has no histogram of {q.signal} for that window")
    if q.fn == "rate":
        return _rate(q.signal, sel, w)
    if q.fn == "ratio":
        assert q.denominator is not None
        return f"({_rate(q.signal, sel, w)} / {_rate(q.denominator, sel, w)})"
    raise Unexpressible(f"{q.fn}(…) has no PromQL form")


def _gauge(signal: str, sel: str) -> str:
    if signal not in _GAUGES:
        raise Unexpressible(f"/metrics exports no series for {signal}")
    return _GAUGES[signal].replace("{sel}", sel)


def _rate(signal: str, sel: str, window: str) -> str:
    if signal not in c.COUNTER_METRICS:
        raise Unexpressible(f"/metrics exports no counter for {signal}")
    return f"sum by (backend) (rate({c.COUNTER_METRICS[signal]}_total{sel}[{window}]))"


def rule_expr(rule: Rule) -> str:
    """The rule's condition as PromQL, one ``or`` branch per per-backend threshold."""
    cond = rule.parsed
    base = _matchers(rule.selector)
    if not rule.per_backend:
        return f"{term_promql(cond.left, base)} {cond.op} {format_number(cond.threshold)}"
    branches = [f"({term_promql(cond.left, [*base, f'backend={_quote(b)}'])} {cond.op} {format_number(t)})"
                for b, t in sorted(rule.per_backend.items())]
    others = _alternatives(sorted(rule.per_backend))
    branches.append(f"({term_promql(cond.left, [*base, f'backend!~{others}'])} {cond.op} {format_number(cond.threshold)})")
    return " or ".join(branches)


def translate_template(text: str, rule: Rule) -> str:
    """An inferwatch annotation template in Prometheus's template language."""
    def one(m: re.Match[str]) -> str:
        name, flt = m.group(1), m.group(2)
        if name == "threshold":  # a constant per rule (per-backend thresholds: the default one)
            t = rule.parsed.threshold
            return {"duration": format_duration, "percent": format_percent}.get(flt or "", format_number)(t)
        ref = "$value" if name == "value" else f"$labels.{name}"
        return f"{{{{ {ref} | {_FILTERS[flt]} }}}}" if flt in _FILTERS else f"{{{{ {ref} }}}}"
    return _PLACEHOLDER.sub(one, text)


def alert_rule(rule: Rule) -> dict[str, object]:
    out: dict[str, object] = {"alert": rule.name, "expr": rule_expr(rule)}
    if rule.for_:
        out["for"] = format_window(rule.for_)
    if rule.keep_firing_for:
        out["keep_firing_for"] = format_window(rule.keep_firing_for)
    out["labels"] = {"severity": rule.severity, **rule.labels}
    notes = []
    if isinstance(rule.parsed.left, Baseline):
        notes.append("approximation: inferwatch compares with the median/mean of its stored step values; "
                     "Prometheus with quantile_over_time/avg_over_time of the raw gauge")
    if rule.no_data == "alerting":
        notes.append("no_data: alerting is not translated (add an absent() rule for it)")
    annotations = {k: translate_template(v, rule) for k, v in rule.annotations.items()}
    if notes:
        annotations["inferwatch_note"] = "; ".join(notes)
    if annotations:
        out["annotations"] = annotations
    return out


def _slo_ratio(slo: SLO, window: float) -> str:
    sel = _sel(_matchers(slo.selector))
    w = format_window(window)
    sli = slo.sli
    if isinstance(sli, LatencySLI):
        if sli.signal not in c.HISTOGRAM_METRICS:
            raise Unexpressible(f"/metrics has no histogram of {sli.signal}")
        name = c.HISTOGRAM_METRICS[sli.signal]
        le = _sel([*_matchers(slo.selector), f"le={_quote(repr(float(sli.threshold)))}"])
        return (f"1 - (sum(rate({name}_bucket{le}[{w}])) / sum(rate({name}_count{sel}[{w}])))")
    assert isinstance(sli, AvailabilitySLI)
    if sli.source == "up":
        return f"1 - avg(avg_over_time({c.METRIC_BACKEND_UP}{sel}[{w}]))"
    errors, requests = c.COUNTER_METRICS[c.REQUEST_ERRORS_TOTAL], c.COUNTER_METRICS[c.REQUESTS_TOTAL]
    return f"sum(rate({errors}_total{sel}[{w}])) / sum(rate({requests}_total{sel}[{w}]))"


def _burn_summary(slo: SLO, a: MWMBAlert) -> str:
    return (f"SLO {slo.name} ({slo.objective:.4%} over {format_window(slo.window)}) burns its error budget "
            f"faster than {a.burn_rate_factor:g}x over {format_window(a.long_window)} and "
            f"{format_window(a.short_window)}")


def slo_group(slo: SLO) -> dict[str, object]:
    """Recording rules of the SLO's bad-event ratio per alert window, and its four burn-rate
    alerts. A latency SLO needs the engines to have a bucket at exactly its threshold."""
    group = mwmb_alerts(slo)
    labels = {"slo": slo.name}
    rules: list[dict[str, object]] = [
        {"record": f"inferwatch_slo:error_ratio:rate{format_window(w)}", "expr": _slo_ratio(slo, w), "labels": labels}
        for w in group.windows()]
    for a in group.alerts():
        long_r = f"inferwatch_slo:error_ratio:rate{format_window(a.long_window)}{{slo={_quote(slo.name)}}}"
        short_r = f"inferwatch_slo:error_ratio:rate{format_window(a.short_window)}{{slo={_quote(slo.name)}}}"
        rules.append({
            "alert": f"SLOBurnRate:{slo.name}:{a.kind}",
            "expr": f"({long_r} > {a.error_ratio_threshold!r}) and ({short_r} > {a.error_ratio_threshold!r})",
            "keep_firing_for": BURN_KEEP_FIRING,
            "labels": {"severity": _SEVERITY[a.severity], "slo": slo.name,
                       "burn_window": f"{format_window(a.long_window)}/{format_window(a.short_window)}",
                       "slo_alert": a.severity},
            "annotations": {"summary": _burn_summary(slo, a)},
        })
    return {"name": f"inferwatch-slo-{slo.name}", "rules": rules}


def export_rules(rules: Sequence[Rule], slos: Sequence[SLO]) -> Export:
    """Every rule and SLO as Prometheus rule groups (see the module doc)."""
    out = Export()
    alerting: list[dict[str, object]] = []
    for r in rules:
        try:
            alerting.append(alert_rule(r))
        except Unexpressible as exc:
            out.skipped[r.name] = str(exc)
    if alerting:
        out.groups.append({"name": "inferwatch-rules", "rules": alerting})
    for s in slos:
        try:
            out.groups.append(slo_group(s))
        except Unexpressible as exc:
            out.skipped[f"SLO {s.name}"] = str(exc)
    return out


# --- promtool unit tests -----------------------------------------------------------------------

#: gauge signal -> the exported series a unit test feeds (one per backend): the gauges that are
#: one plain series (not an expression over several)
_TEST_GAUGES = {s: e.removesuffix("{sel}") for s, e in _GAUGES.items() if "(" not in e}


def _breaching(op: str, threshold: float) -> float:
    """A value on the alerting side of ``op threshold``."""
    if op in ("==", ">=", "<="):
        return threshold
    if op == "!=":
        return threshold + 1
    return threshold * 1.02 + 0.01 if op == ">" else threshold * 0.98 - 0.01


def humanize_duration(v: float) -> str:
    """Prometheus's ``humanizeDuration`` template function (``template/template.go``).

    >>> humanize_duration(0.75), humanize_duration(9.95), humanize_duration(75), humanize_duration(0)
    ('750ms', '9.95s', '1m 15s', '0s')
    """
    if math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    if v == 0:
        return f"{v:.4g}s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        whole = int(v)
        seconds, minutes, hours, days = whole % 60, whole // 60 % 60, whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{v:.4g}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{v:.4g}{prefix}s"


def _render(template: str, value: float, labels: Mapping[str, str]) -> str | None:
    """What Prometheus renders for the translated template; None where it cannot be predicted
    here (a filter other than humanizePercentage)."""
    out = []
    pos = 0
    for m in re.finditer(r"\{\{\s*(\$value|\$labels\.(\w+))\s*(?:\|\s*(\w+)\s*)?\}\}", template):
        out.append(template[pos:m.start()])
        pos = m.end()
        if m.group(2):
            out.append(labels.get(m.group(2), ""))
            continue
        if m.group(3) is None:
            out.append(f"{value:g}")
        elif m.group(3) == "humanizePercentage":
            out.append(f"{value * 100:.4g}%")
        elif m.group(3) == "humanizeDuration":
            out.append(humanize_duration(value))
        else:
            return None
    out.append(template[pos:])
    text = "".join(out)
    return None if "{{" in text else text


#: how long the SLO unit tests feed their series, and how often (every window of an SLO's alerts
#: then holds samples: Prometheus's rate() over a window longer than the data reads what is there)
_SLO_TEST_SPAN = 70 * 60.0
_SLO_TEST_STEP = 15.0


def _slo_series(slo: SLO, bad: float) -> list[dict[str, str]] | None:
    """Input series that make ``bad`` the SLO's bad-event ratio in every window; None where the
    SLI cannot be fed that ratio exactly (``up`` takes only all-good or all-bad)."""
    labels = {"backend": slo.selector.backend[0] if slo.selector.backend else "unit-test", **slo.selector.labels}
    lab = ",".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items()))
    n = int(_SLO_TEST_SPAN // _SLO_TEST_STEP)
    total = 600.0

    def counter(name: str, per_step: float) -> dict[str, str]:
        return {"series": f"{name}{{{lab}}}", "values": f"0+{per_step:g}x{n}"}

    sli = slo.sli
    if isinstance(sli, LatencySLI):
        name = c.HISTOGRAM_METRICS[sli.signal]
        le = _quote(repr(float(sli.threshold)))
        return [{"series": f"{name}_bucket{{{lab},le={le}}}", "values": f"0+{total * (1 - bad):g}x{n}"},
                counter(f"{name}_count", total)]
    assert isinstance(sli, AvailabilitySLI)
    if sli.source == "up":
        if bad not in (0.0, 1.0):
            return None
        return [{"series": f"{c.METRIC_BACKEND_UP}{{{lab}}}", "values": f"{1 - bad:g}x{n}"}]
    return [counter(f"{c.COUNTER_METRICS[c.REQUEST_ERRORS_TOTAL]}_total", total * bad),
            counter(f"{c.COUNTER_METRICS[c.REQUESTS_TOTAL]}_total", total)]


def slo_unit_tests(slo: SLO) -> list[dict[str, object]]:
    """``promtool`` tests of one SLO's burn-rate alerts: with no bad events none fires; at a bad
    ratio between the slowest and the quickest page alert's threshold exactly the alerts whose
    threshold is below it fire (where the SLI can be fed that); with every event bad all four."""
    group = mwmb_alerts(slo)
    alerts = group.alerts()
    thresholds = sorted(a.error_ratio_threshold for a in alerts)
    cases: list[float] = [0.0, 1.0]
    mid = (thresholds[-1] * thresholds[-2]) ** 0.5  # between the two highest thresholds
    if thresholds[-2] < mid < thresholds[-1] < 1:
        cases.insert(1, mid)
    out: list[dict[str, object]] = []
    for bad in cases:
        series = _slo_series(slo, bad)
        if series is None:
            continue
        checks = []
        for a in alerts:
            fire = bad > a.error_ratio_threshold
            expected = [{"exp_labels": {
                "severity": _SEVERITY[a.severity], "slo": slo.name,
                "burn_window": f"{format_window(a.long_window)}/{format_window(a.short_window)}",
                "slo_alert": a.severity},
                "exp_annotations": {"summary": _burn_summary(slo, a)}}] if fire else []
            checks.append({"eval_time": format_window(_SLO_TEST_SPAN), "alertname": f"SLOBurnRate:{slo.name}:{a.kind}",
                           "exp_alerts": expected})
        out.append({"name": f"SLO {slo.name}: {bad:.4%} of events bad", "interval": format_window(_SLO_TEST_STEP),
                    "input_series": series, "alert_rule_test": checks})
    return out


def unit_tests(rules: Sequence[Rule], rule_file: str,
               slos: Sequence[SLO] = ()) -> tuple[dict[str, object], dict[str, str]]:
    """A ``promtool test rules`` file for the rules it can feed simply (a gauge, a percentile of
    a histogram or a ratio of counters per backend, plain or per-backend thresholds): each
    breaches for its ``for`` plus a minute and must fire with its labels and rendered
    annotations; each SLO's burn-rate alerts (:func:`slo_unit_tests`); and the reason for each
    rule left out."""
    tests: list[dict[str, object]] = []
    left_out: dict[str, str] = {}
    for slo in slos:
        tests.extend(slo_unit_tests(slo))
    for r in rules:
        cond = r.parsed
        term = cond.left
        if not isinstance(term, Query) or r.selector != Selector():
            left_out[r.name] = "only rules over one gauge or one ratio of counters, without a selector, are tested"
            continue
        backends = {"unit-test": cond.threshold, **r.per_backend}
        series: list[dict[str, str]] = []
        expected = []
        for backend, threshold in backends.items():
            value = _breaching(cond.op, threshold)
            labels = {"backend": backend}
            if term.fn == "last" and term.signal in _TEST_GAUGES:
                series.append({"series": f'{_TEST_GAUGES[term.signal]}{{backend="{backend}"}}',
                               "values": f"{value:g}x60"})
            elif (term.fn in ("p50", "p95", "p99") and term.signal in c.HISTOGRAM_METRICS and cond.op == ">"
                  and threshold > 0):
                # every observation between the threshold and twice it: histogram_quantile
                # interpolates q of the way through that bucket, threshold * (1 + q)
                q = int(term.fn[1:]) / 100
                value = threshold * (1 + q)
                name = c.HISTOGRAM_METRICS[term.signal]
                for le, count in ((format_number(threshold), 0), (format_number(2 * threshold), 60),
                                  ("+Inf", 60)):
                    series.append({"series": f'{name}_bucket{{backend="{backend}",le="{le}"}}',
                                   "values": f"0+{count}x60"})
            elif term.fn == "ratio" and term.signal in c.COUNTER_METRICS and term.denominator in c.COUNTER_METRICS:
                per_minute = 600.0
                series.append({"series": f'{c.COUNTER_METRICS[term.denominator]}_total{{backend="{backend}"}}',
                               "values": f"0+{per_minute:g}x60"})
                series.append({"series": f'{c.COUNTER_METRICS[term.signal]}_total{{backend="{backend}"}}',
                               "values": f"0+{per_minute * value:g}x60"})
            else:
                left_out[r.name] = f"{term} is not fed by the generated tests"
                break
            annotations = {k: _render(translate_template(v, r), value, labels) for k, v in r.annotations.items()}
            if any(v is None for v in annotations.values()):
                left_out[r.name] = "its annotations use a filter whose output is not predicted here"
                break
            expected.append({"exp_labels": {"severity": r.severity, **r.labels, **labels},
                             "exp_annotations": annotations})
        else:
            eval_time = format_window(r.for_ + 300.0)
            tests.append({"interval": "1m", "input_series": series,
                          "alert_rule_test": [{"eval_time": eval_time, "alertname": r.name, "exp_alerts": expected}]})
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}, left_out
