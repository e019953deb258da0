"""The dashboard pages: fleet overview ``/``, backend detail ``/backends/{name}``, ``/gpus`` and
``/slos``.

Server-rendered with Jinja2 (autoescape on). The pages carry no inline code: chart figures are
embedded as ``<script type="application/json">`` data blocks and drawn by ``dashboard.js``,
so the strict Content-Security-Policy (``script-src 'self'``) holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from alerts.slo_data import slo_status
from collector import query
from collector.config import BackendConfig
from collector.sources import tls_target
from collector.summary import column_value
from core import conventions as c
from core.units import parse_duration
from dashboards import data as d
from dashboards import figures as f
from exporters.adapters import exported_signals
from web.deps import Ctx, WebContext
from web.render import error_page, html, level, when

router = APIRouter()

FLEET_WINDOW = "5m"
MAX_CUSTOM = 90 * 86400.0
#: newest alert transitions (whole fleet) read to mark a backend page's alert periods
HISTORY_LIMIT = 10_000

#: (key in /api/v1/backends, heading, format); each cell is coloured against the threshold of the
#: alert rules in force for its backend (``WebContext.thresholds``)
COLUMNS: list[dict[str, Any]] = [
    {"key": "queue_depth", "title": "queue", "fmt": "int"},
    {"key": "requests_running", "title": "running", "fmt": "int"},
    {"key": "ttft.p50", "title": "TTFT p50", "fmt": "s"},
    {"key": "ttft.p95", "title": "TTFT p95", "fmt": "s"},
    {"key": "ttft.p99", "title": "TTFT p99", "fmt": "s"},
    {"key": "e2e.p99", "title": "e2e p99", "fmt": "s"},
    {"key": "tokens_per_second", "title": "tokens/s", "fmt": "num"},
    {"key": "error_ratio", "title": "errors", "fmt": "pct"},
    {"key": "kv_cache_usage_ratio", "title": "KV cache", "fmt": "pct"},
    {"key": "gpu_memory_used_ratio", "title": "GPU memory", "fmt": "pct"},
]
CERT_WARN_DAYS, CERT_BAD_DAYS = 14.0, 3.0  # CertificateExpiringSoon / CertificateExpiryCritical


def parse_range(rng: str, start: str | None, end: str | None, now: float) -> tuple[float, float, str]:
    """``(until, window, label)`` of ``range=15m|1h|6h|24h|7d|custom`` (custom: ``from``/``to``
    as Unix seconds or ISO 8601, ``to`` defaulting to now)."""
    if rng in d.RANGES:
        return now, d.RANGES[rng], rng
    if rng != "custom":
        raise HTTPException(400, f"range: unknown range {rng!r}; expected one of {', '.join([*d.RANGES, 'custom'])}")

    def instant(name: str, text: str | None, default: float | None) -> float:
        if not text:
            if default is None:
                raise HTTPException(400, f"{name}: required with range=custom")
            return default
        try:
            return float(text)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise HTTPException(400, f"{name}: {text!r} is neither Unix seconds nor an ISO 8601 time") from None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()

    until = instant("to", end, now)
    since = instant("from", start, None)
    if since >= until:
        raise HTTPException(400, "from: must be before to")
    if until - since > MAX_CUSTOM:
        raise HTTPException(400, "from: a custom range is at most 90 days")
    return until, until - since, "custom"


# -- fleet -----------------------------------------------------------------------------------
def _fleet(ctx: WebContext, window: float) -> dict[str, Any]:
    now = ctx.clock()
    summaries = ctx.summaries(window, now)
    certs = {r.target: r for r in ctx.reads.observations.certificate_results()}
    firing: dict[str, int] = {}
    fleet_wide: list[dict[str, Any]] = []  # firing alerts of no single backend: SLOs, GPUs, certificates
    muted = ctx.muted()
    for a in ctx.alert_states().values():
        if a.state != "firing":
            continue
        if "backend" in a.labels:
            firing[a.labels["backend"]] = firing.get(a.labels["backend"], 0) + 1
        else:
            fleet_wide.append({"alertname": a.labels.get("alertname", a.rule), "severity": a.labels.get("severity", ""),
                               "labels": " ".join(f"{k}={v}" for k, v in sorted(a.labels.items())
                                                  if k not in ("alertname", "severity")),
                               "summary": a.annotations.get("summary", ""), "since": when(a.fired_at),
                               "muted": muted.get(a.fingerprint)})
    fleet_wide.sort(key=lambda x: ({"critical": 0, "warning": 1}.get(x["severity"], 2), x["alertname"]))
    thresholds = ctx.thresholds
    rows = []
    for s in summaries:
        b = ctx.backends[s.name]
        target = tls_target(b)
        cert = certs.get(target) if target is not None else None
        days = None if cert is None or cert.not_after is None else (cert.not_after - now) / 86400.0
        rows.append({
            "s": s,
            "cells": [{"key": col["key"], "value": column_value(s, col["key"]), "fmt": col["fmt"],
                       "bad": thresholds[b.name][col["key"]],
                       "cls": level(column_value(s, col["key"]), thresholds[b.name][col["key"]])} for col in COLUMNS],
            "labels": " ".join(f"{k}={v}" for k, v in sorted(s.labels.items())),
            "models": ", ".join(s.models) or (b.probe.model if b.probe is not None else ""),
            "cert_days": days,
            "cert_cls": "na" if days is None else ("bad" if days < CERT_BAD_DAYS else
                                                   "warn" if days < CERT_WARN_DAYS else "ok"),
            "firing": firing.get(s.name, 0),
        })
    step = d.fleet_chart_step(ctx.cfg.scrape_interval)
    qs = d.fleet_quantiles(ctx.reads, now, d.FLEET_CHART_WINDOW, step)
    chart = f.percentiles("Fleet TTFT (all backends, last hour)",
                          {query.quantile_key(q): d.downsample(pts) for q, pts in qs.items()},
                          x_range=(now - d.FLEET_CHART_WINDOW, now))
    return {"rows": rows, "waiting": not ctx.reads.metrics.latest_status(), "chart": chart, "now": now,
            "fleet_alerts": fleet_wide, "firing_total": sum(firing.values()) + len(fleet_wide)}

@router.get("/", response_class=HTMLResponse)
async def fleet_page(ctx: Ctx, window: str = FLEET_WINDOW, refresh: str = "15s") -> Response:
    try:
        w = parse_duration(window)
    except ValueError as exc:
        return error_page(400, f"window: {exc}", "/", "Back to the fleet (5m window)")
    if w <= 0:
        return error_page(400, "window: must be greater than 0", "/", "Back to the fleet (5m window)")
    try:
        every = parse_duration(refresh)
    except ValueError as exc:
        return error_page(400, f"refresh: {exc}", "/", "Back to the fleet (refresh every 15 s)")
    if not 2 <= every <= 3600:
        return error_page(400, "refresh: between 2s and 1h", "/", "Back to the fleet (refresh every 15 s)")
    page = await run_in_threadpool(_fleet, ctx, w)
    config = {"window": window, "columns": COLUMNS, "refresh_seconds": every}
    return html("fleet.html", page="fleet", columns=COLUMNS, config=config, window=window, **page)

# -- one backend -----------------------------------------------------------------------------
def _backend(ctx: WebContext, b: BackendConfig, until: float, window: float) -> dict[str, Any]:
    reads = ctx.reads
    step = d.choose_step(window, min_step=b.interval or ctx.cfg.scrape_interval)
    name = b.name

    plain = query.series_many(reads.metrics, name, [c.QUEUE_DEPTH, c.REQUESTS_RUNNING, c.PROMPT_TOKENS_TOTAL,
                                            c.GENERATION_TOKENS_TOTAL, c.REQUEST_ERRORS_TOTAL,
                                            c.REQUESTS_TOTAL, c.KV_CACHE_USAGE_RATIO], until, window, step)

    def ser(signal: str) -> d.Points:
        return d.downsample(plain[signal])

    errors = d.scrape_errors(reads.metrics.status_series(name, until - window, until), until, window, step)
    marks = [f.error_marks(errors)] if errors else []
    xr = (until - window, until)
    charts: list[tuple[str, dict[str, Any]]] = []
    lat: dict[str, dict[str, d.Points]] = {}
    latency = (("ttft", c.TTFT_SECONDS, "Time to first token"),
               ("itl", c.ITL_SECONDS, "Inter-token latency"),
               ("e2e", c.E2E_LATENCY_SECONDS, "End-to-end latency"))
    hist = query.histogram_series(reads.metrics, name, [sig for _, sig, _ in latency], until, window, step)
    for key, signal, title in latency:
        lat[key] = {query.quantile_key(q): d.downsample(pts) for q, pts in hist[signal].items()}
        charts.append((key, f.percentiles(title, lat[key], extra=marks, x_range=xr)))
    charts.append(("queue", f.lines("Queue depth and running requests",
                                    {"queue depth": ser(c.QUEUE_DEPTH), "running": ser(c.REQUESTS_RUNNING)},
                                    y_title="requests", extra=marks, x_range=xr)))
    charts.append(("tokens", f.lines("Tokens per second",
                                     {"prompt": ser(c.PROMPT_TOKENS_TOTAL), "generation": ser(c.GENERATION_TOKENS_TOTAL)},
                                     y_title="tokens/s", extra=marks, x_range=xr)))
    charts.append(("errors", f.lines("Error ratio",
                                     {"errors / requests": d.ratio(ser(c.REQUEST_ERRORS_TOTAL), ser(c.REQUESTS_TOTAL))},
                                     y_format=".1%", extra=marks, x_range=xr)))
    charts.append(("kv", f.lines("KV-cache usage", {"KV cache": ser(c.KV_CACHE_USAGE_RATIO)},
                                 y_format=".0%", extra=marks, x_range=xr)))
    if b.probe is not None:
        probes = reads.observations.probe_results_between(until - window, until, backends=[name])
        measured = d.downsample(d.probe_ttft(probes, until, window, step))
        charts.append(("probe", f.figure("TTFT p50: probe-measured vs engine-reported", [
            f.line("probe (measured)", measured, color="#1b7f3b", mode="lines+markers"),
            f.line("engine (reported)", lat["ttft"]["p50"], color="#2a5db0", dash="dot"),
            *marks], y_title="seconds", x_range=xr)))
    spans = d.alert_spans(ctx.alert_store.alert_history(since=until - window, limit=HISTORY_LIMIT),
                          ctx.alert_states().values(),
                          name, until - window, until)
    reads_of = {r.name: frozenset(n.signal for n in r.needs()) for r in ctx.cfg.rules_in_force}
    for key, fig in charts:
        f.add_alert_marks(fig, [s for s in spans if d.shades(reads_of.get(s.rule), key)], xr)
    exported = exported_signals(b.engine)
    if exported is not None:  # in place of an empty chart: why it is empty
        charts = [(key, d.missing_note(b.engine, key, exported, b.probe is not None) or fig) for key, fig in charts]
    summary = query.backend_summary(
        query.WindowData.fetch(reads, until, min(window, 300.0), [name], [name] if b.probe else []), b)
    st = reads.metrics.latest_status().get(name)
    never_up = st is None or st.last_success_ts is None
    return {"charts": charts, "summary": summary, "step": step, "never_up": never_up, "alert_spans": spans,
            "scraped": st is not None, "error_count": sum(n for _, n, _ in errors)}

@router.get("/backends/{name:path}", response_class=HTMLResponse)
async def backend_page(ctx: Ctx, name: str, rng: str = Query("1h", alias="range"),
                       start: str | None = Query(None, alias="from"),
                       end: str | None = Query(None, alias="to")) -> Response:
    b = ctx.backends.get(name)
    if b is None:
        return error_page(404, f"No backend named {name!r}.")
    try:
        until, window, label = parse_range(rng, start, end, ctx.clock())
    except HTTPException as exc:
        return error_page(exc.status_code, str(exc.detail), f"/backends/{quote(name)}", f"Back to {name} (last hour)")
    page = await run_in_threadpool(_backend, ctx, b, until, window)
    return html("backend.html", page="backend", b=b, range=label, ranges=list(d.RANGES),
                start=start or "", end=end or "", since=until - window, until=until, **page)

# -- GPUs ------------------------------------------------------------------------------------
def _gpus(ctx: WebContext, until: float, window: float) -> dict[str, Any]:
    reads = ctx.reads
    latest = reads.observations.latest_gpus(until - window)
    # coloured against the GPU memory rule in force (GPUMemoryHigh: 98 % unless overridden)
    bad = d.signal_threshold(ctx.cfg.rules_in_force, "gpu_memory_used_ratio")
    gpus = [{**query.gpu_view(ts, g), "used_cls": level(g.memory_used_bytes / g.memory_total_bytes
                                                        if g.memory_used_bytes is not None and g.memory_total_bytes
                                                        else None, bad), "used_bad": bad}
            for ts, g in latest]
    xr = (until - window, until)
    mem_charts: list[tuple[str, dict[str, Any]]] = []
    util: dict[str, d.Points] = {}
    temp: dict[str, d.Points] = {}
    power: dict[str, d.Points] = {}
    for i, (_, g) in enumerate(latest):
        rows = reads.observations.gpu_series(g.uuid, until - window, until)
        label = f"{g.host}/{g.index}"
        used = d.downsample([(t, s.memory_used_bytes) for t, s in rows])
        total = d.downsample([(t, s.memory_total_bytes) for t, s in rows])
        mem_charts.append((f"mem{i}", f.lines(f"{label} {g.name or ''} memory",
                                              {"used": used, "total": total}, y_title="GiB",
                                              scale=1 / 2**30, x_range=xr)))
        util[label] = d.downsample([(t, s.utilization_ratio) for t, s in rows])
        temp[label] = d.downsample([(t, s.temperature_celsius) for t, s in rows])
        power[label] = d.downsample([(t, s.power_watts) for t, s in rows])
    charts = mem_charts
    if latest:
        charts = [*mem_charts,
                  ("util", f.lines("Utilisation", util, y_format=".0%", x_range=xr)),
                  ("temp", f.lines("Temperature", temp, y_title="°C", x_range=xr)),
                  ("power", f.lines("Power", power, y_title="W", x_range=xr))]
    notes: list[str] = []
    if ctx.collector is not None:
        status = ctx.collector.gpu_status()
        if not status.nvml_enabled:
            notes.append(f"Local NVML is off on {status.host}: {status.nvml_reason or 'not started yet'}")
        for source, error in sorted(status.errors.items()):
            if error:
                notes.append(f"{source}: {error}")
    return {"gpus": gpus, "charts": charts, "notes": notes}

@router.get("/gpus", response_class=HTMLResponse)
async def gpus_page(ctx: Ctx, rng: str = Query("1h", alias="range")) -> Response:
    try:
        until, window, label = parse_range(rng, None, None, ctx.clock())
    except HTTPException as exc:
        return error_page(exc.status_code, str(exc.detail), "/gpus", "Back to the GPUs (last hour)")
    page = await run_in_threadpool(_gpus, ctx, until, window)
    return html("gpus.html", page="gpus", range=label, ranges=list(d.RANGES), **page)

# -- SLOs ------------------------------------------------------------------------------------
def _slos(ctx: WebContext) -> list[dict[str, Any]]:
    """Each SLO's view (as ``/api/v1/slos``) plus its burn-down chart:
    the error budget left over the events from the window's start to each step, with the
    line where it is spent (0 %)."""
    now = ctx.clock()
    out: list[dict[str, Any]] = []
    for slo in ctx.cfg.slos:
        try:
            status = slo_status(slo, ctx.reads.metrics, ctx.cfg, now)
        except Exception as exc:  # one broken SLO must not hide the others
            out.append({"name": slo.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        since = now - slo.window
        left = f.line("error budget left", status.burn_down, color="#2a5db0",
                      mode="lines+markers")  # markers: the first step's lone point shows too
        left["marker"] = {"size": 4}
        spent = f.line("budget spent (0 %)", [(since, 0.0), (now, 0.0)], color="#b00020", dash="dash")
        chart = f.figure(f"{slo.name} ({slo.objective * 100:.4g} % over {status.window_text})",
                         [left, spent], y_title="error budget left", y_format=".0%", x_range=(since, now))
        out.append({**status.to_json(), "chart": chart})
    return out


@router.get("/slos", response_class=HTMLResponse)
async def slos_page(ctx: Ctx) -> Response:
    return html("slos.html", page="slos", slos=await run_in_threadpool(_slos, ctx))



@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
async def api_docs() -> Response:
    """The HTTP API's routes, drawn from /api/openapi.json by ``static/apidocs.js``."""
    return html("apidocs.html", page="api")
