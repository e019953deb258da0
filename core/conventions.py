"""The normalised vocabulary: every signal name, its kind, and every ``inferwatch_*`` metric name.

Engine adapters map native metric families onto these names; the store, the query layer, the
JSON API and ``/metrics`` all read them from here and never spell them inline.
"""

from __future__ import annotations

from typing import Final, Literal

SignalKind = Literal["gauge", "counter", "histogram"]

# --- gauges (last value wins; summed over models unless noted) ------------------------------
QUEUE_DEPTH: Final = "queue_depth"
REQUESTS_RUNNING: Final = "requests_running"
KV_CACHE_USAGE_RATIO: Final = "kv_cache_usage_ratio"  # 0..1, max over models
PREFIX_CACHE_HIT_RATIO: Final = "prefix_cache_hit_ratio"  # 0..1, engines that export a ratio

# --- counters (cumulative; stored as per-interval deltas, reset-safe) ------------------------
REQUESTS_TOTAL: Final = "requests_total"  # finished requests, successful or not
REQUEST_ERRORS_TOTAL: Final = "request_errors_total"
PROMPT_TOKENS_TOTAL: Final = "prompt_tokens_total"
GENERATION_TOKENS_TOTAL: Final = "generation_tokens_total"
PREFIX_CACHE_QUERIES_TOTAL: Final = "prefix_cache_queries_total"  # tokens queried
PREFIX_CACHE_HITS_TOTAL: Final = "prefix_cache_hits_total"  # tokens hit

# --- histograms (bucket deltas; seconds) -----------------------------------------------------
TTFT_SECONDS: Final = "ttft_seconds"
ITL_SECONDS: Final = "itl_seconds"
E2E_LATENCY_SECONDS: Final = "e2e_latency_seconds"
QUEUE_TIME_SECONDS: Final = "queue_time_seconds"

SIGNALS: Final[dict[str, SignalKind]] = {
    QUEUE_DEPTH: "gauge",
    REQUESTS_RUNNING: "gauge",
    KV_CACHE_USAGE_RATIO: "gauge",
    PREFIX_CACHE_HIT_RATIO: "gauge",
    REQUESTS_TOTAL: "counter",
    REQUEST_ERRORS_TOTAL: "counter",
    PROMPT_TOKENS_TOTAL: "counter",
    GENERATION_TOKENS_TOTAL: "counter",
    PREFIX_CACHE_QUERIES_TOTAL: "counter",
    PREFIX_CACHE_HITS_TOTAL: "counter",
    TTFT_SECONDS: "histogram",
    ITL_SECONDS: "histogram",
    E2E_LATENCY_SECONDS: "histogram",
    QUEUE_TIME_SECONDS: "histogram",
}

#: Gauges that are ratios: combined over models with max (the worst), not a sum.
MAX_OVER_MODELS: Final = frozenset({KV_CACHE_USAGE_RATIO, PREFIX_CACHE_HIT_RATIO})

#: Quantiles the API and ``/metrics`` report for every histogram signal.
QUANTILES: Final = (0.5, 0.95, 0.99)

# --- re-exported metric names (GET /metrics) ---------------------------------------------------
PREFIX: Final = "inferwatch_"
METRIC_BACKEND_UP: Final = "inferwatch_backend_up"
METRIC_QUEUE_DEPTH: Final = "inferwatch_queue_depth"
METRIC_REQUESTS_RUNNING: Final = "inferwatch_requests_running"
METRIC_TTFT: Final = "inferwatch_ttft_seconds"
METRIC_ITL: Final = "inferwatch_itl_seconds"
METRIC_E2E: Final = "inferwatch_e2e_latency_seconds"
METRIC_TOKENS_PER_SECOND: Final = "inferwatch_tokens_per_second"
METRIC_PROMPT_TOKENS_PER_SECOND: Final = "inferwatch_prompt_tokens_per_second"
METRIC_ERROR_RATIO: Final = "inferwatch_error_ratio"
METRIC_KV_CACHE: Final = "inferwatch_kv_cache_usage_ratio"
METRIC_SCRAPE_DURATION: Final = "inferwatch_scrape_duration_seconds"
METRIC_SCRAPE_ERRORS: Final = "inferwatch_scrape_errors_total"
METRIC_SCRAPES: Final = "inferwatch_scrapes_total"
METRIC_LAST_SCRAPE: Final = "inferwatch_last_scrape_timestamp_seconds"
METRIC_SCRAPE_START_LAG: Final = "inferwatch_scrape_start_lag_seconds"
METRIC_SCRAPE_TICKS_SKIPPED: Final = "inferwatch_scrape_ticks_skipped_total"
METRIC_CERT_EXPIRY: Final = "inferwatch_cert_expiry_timestamp_seconds"
METRIC_GPU_MEMORY_USED: Final = "inferwatch_gpu_memory_used_bytes"
METRIC_GPU_MEMORY_TOTAL: Final = "inferwatch_gpu_memory_total_bytes"
METRIC_GPU_UTILIZATION: Final = "inferwatch_gpu_utilization_ratio"
METRIC_GPU_TEMPERATURE: Final = "inferwatch_gpu_temperature_celsius"
METRIC_GPU_POWER: Final = "inferwatch_gpu_power_watts"
METRIC_GPU_PROCESS_MEMORY: Final = "inferwatch_gpu_process_memory_bytes"
METRIC_GPU_SM_CLOCK: Final = "inferwatch_gpu_sm_clock_hertz"
METRIC_GPU_TENSOR_ACTIVE: Final = "inferwatch_gpu_tensor_active_ratio"
METRIC_GPU_LAST_XID: Final = "inferwatch_gpu_last_xid_error"
METRIC_CERT_CHAIN_EXPIRY: Final = "inferwatch_cert_chain_expiry_timestamp_seconds"
METRIC_CERT_VERIFIED: Final = "inferwatch_cert_verified"
METRIC_CERT_HOSTNAME_MATCH: Final = "inferwatch_cert_hostname_match"
#: deployment-checklist audits (``exporters.audit``): per target and check, 1 pass, 0.5 warn, 0 fail
METRIC_AUDIT_CHECK: Final = "inferwatch_audit_check"
METRIC_AUDIT_LAST_RUN: Final = "inferwatch_audit_last_run_timestamp_seconds"
METRIC_AUDIT_DURATION: Final = "inferwatch_audit_duration_seconds"
METRIC_TLS_CHECK_SUCCESS: Final = "inferwatch_tls_check_success"
METRIC_TLS_VERSION_INFO: Final = "inferwatch_tls_version_info"
# what inferwatch's streaming probe measured (what a user feels), not what the engine reports
METRIC_PROBE_TTFT: Final = "inferwatch_probe_ttft_seconds"
METRIC_PROBE_E2E: Final = "inferwatch_probe_e2e_seconds"
METRIC_PROBE_TOKENS_PER_SECOND: Final = "inferwatch_probe_tokens_per_second"
METRIC_PROBE_SUCCESS: Final = "inferwatch_probe_success"
METRIC_PROBE_GOODPUT: Final = "inferwatch_probe_goodput_ratio"
METRIC_PROBE_PHASE: Final = "inferwatch_probe_phase_seconds"
# the alert engine and its outbox
METRIC_ALERTS_FIRING: Final = "inferwatch_alerts_firing"
METRIC_NOTIFICATIONS_QUEUED: Final = "inferwatch_notifications_queued"
METRIC_NOTIFICATIONS_SENT: Final = "inferwatch_notifications_sent"
METRIC_NOTIFICATION_FAILURES: Final = "inferwatch_notification_failures"
METRIC_NOTIFICATION_DELIVERY: Final = "inferwatch_notification_delivery_seconds"
METRIC_RULE_EVALUATIONS: Final = "inferwatch_rule_evaluations"

METRIC_QUEUE_TIME: Final = "inferwatch_queue_time_seconds"
METRIC_BUILD_INFO: Final = "inferwatch_build_info"
METRIC_CONFIG_RELOAD_OK: Final = "inferwatch_config_last_reload_successful"
METRIC_CONFIG_RELOAD_AT: Final = "inferwatch_config_last_reload_success_timestamp_seconds"
METRIC_SLO_OBJECTIVE: Final = "inferwatch_slo_objective_ratio"
METRIC_SLO_WINDOW: Final = "inferwatch_slo_window_seconds"
METRIC_SLO_SLI: Final = "inferwatch_slo_sli_ratio"
METRIC_SLO_BUDGET_REMAINING: Final = "inferwatch_slo_error_budget_remaining_ratio"
METRIC_SLO_BURN_RATE: Final = "inferwatch_slo_burn_rate"

#: histogram signal -> re-exported cumulative histogram family (the engine's own buckets)
HISTOGRAM_METRICS: Final = {
    TTFT_SECONDS: METRIC_TTFT,
    ITL_SECONDS: METRIC_ITL,
    E2E_LATENCY_SECONDS: METRIC_E2E,
    QUEUE_TIME_SECONDS: METRIC_QUEUE_TIME,
}
#: counter signal -> re-exported cumulative counter family (``_total`` added on exposition)
COUNTER_METRICS: Final = {
    REQUESTS_TOTAL: "inferwatch_requests",
    REQUEST_ERRORS_TOTAL: "inferwatch_request_errors",
    PROMPT_TOKENS_TOTAL: "inferwatch_prompt_tokens",
    GENERATION_TOKENS_TOTAL: "inferwatch_generation_tokens",
    PREFIX_CACHE_QUERIES_TOTAL: "inferwatch_prefix_cache_queries",
    PREFIX_CACHE_HITS_TOTAL: "inferwatch_prefix_cache_hits",
}
#: the windowed percentiles of a latency, as gauges with ``percentile`` and ``window`` labels
WINDOW_QUANTILE_METRICS: Final = {
    "ttft": "inferwatch_ttft_window_seconds",
    "itl": "inferwatch_itl_window_seconds",
    "e2e": "inferwatch_e2e_latency_window_seconds",
}

# --- label keys ---------------------------------------------------------------------------------
LABEL_BACKEND: Final = "backend"
LABEL_ENGINE: Final = "engine"
LABEL_MODEL: Final = "model"
LABEL_QUANTILE: Final = "quantile"
LABEL_REASON: Final = "reason"
