"""The default rule pack: the alerts every LLM-inference fleet wants, as data. Pure, no I/O.

| rule | expr | for | severity |
|---|---|---|---|
| TTFTp50High | ``p50(ttft_seconds[5m]) > 0.5`` (500 ms) | 5m | warning |
| TTFTp99High | ``p99(ttft_seconds[5m]) > 5`` (5 s) | 5m | warning |
| ErrorRateHigh | ``ratio(request_errors_total, requests_total[5m]) > 0.01`` (1 %) | 5m | critical |
| GPUMemoryHigh | ``gpu_memory_used_ratio > 0.98`` (98 %) | 10m | warning |
| KVCacheExhausted | ``kv_cache_usage_ratio > 0.95`` (95 %) | 5m | warning |
| QueueDepthHigh | ``queue_depth > 100`` | 1m | warning |
| TokenThroughputDegraded | ``baseline(tokens_per_second[5m], median, 24h) < 0.5`` | 15m | warning |
| BackendDown | ``up == 0`` | 1m | critical |
| CertificateExpiringSoon | ``cert_expiry_days < 14`` | 0 | warning |
| CertificateExpiryCritical | ``cert_expiry_days < 3`` | 0 | critical |
| AuditCheckRegressed | ``audit_check_regressed == 1`` | 0 | critical |

**Audits.** ``AuditCheckRegressed`` pages when an item of an endpoint's deployment checklist
(``audits:``) fails now and an earlier stored run passed it: a change broke it (a proxy began
buffering streams, HSTS was dropped, a rate limit removed). Items that never passed are on the
audit page, not paged; a stricter team adds ``audit_check < 1`` (any warn or fail) as its own rule.

**GPU memory.** vLLM and SGLang preallocate most of a GPU's memory for their KV cache by design
(vLLM's ``--gpu-memory-utilization`` defaults to 0.9, SGLang's ``--mem-fraction-static`` to about
0.88), so "over 90 % used" is every healthy GPU of theirs. What runs out is the KV cache inside
that reservation: ``KVCacheExhausted`` watches the engine's own KV-cache usage (near 100 % means
requests are preempted or queued for cache space). ``GPUMemoryHigh`` pages only when the GPU
itself is nearly full (98 % for 10 minutes): a reservation set too high, or another process on
the GPU squeezing the engine — where the next allocation fails.

The latency rules use **time to first token**, not end-to-end latency: e2e latency of an LLM
request grows with the number of tokens it generates (a 500-token answer takes seconds on a
healthy server), so a fixed e2e threshold pages on long answers, while TTFT is what a user
waits for before anything appears, and it rises first when the queue or prefill is the problem.

**Overrides.** ``default_rules(overrides, per_backend)``:

* ``overrides[rule_name]`` (a ``RuleOverride``) replaces fields of a default rule, with config
  spelling (``for``, ``severity``, ``labels`` …), plus ``threshold`` (a number or
  ``"500ms"``/``"90%"``; rewrites the number in ``expr``) and ``enabled: false`` (drops the rule).
* ``per_backend[backend][rule_name] = threshold`` goes into that rule's ``per_backend`` map: the
  evaluator compares that backend's instances against it (``Rule.threshold_for``). One rule, one
  ``alertname`` and one alert identity per backend whatever its threshold, and ``{{ threshold }}``
  shows the threshold that applied — simpler than splitting a rule into selector-scoped copies
  with exclusions.

Instances: per backend (``{backend}`` plus the backend's labels) for the backend rules, per GPU
(``{host, gpu, uuid}``) for GPUMemoryHigh, per TLS target (``{target: "host:port"}``, plus
``backend`` where the target is a backend's URL) for the certificate rules, per audit target
and check (``{target, check}``) for the audit rule. ``per_backend``
thresholds apply to instances that carry a ``backend`` label.

User rules from config (``with_user_rules``) are appended; one named like a default replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import ConfigDict, Field

from alerts.rules import NoData, Rule, RuleSeverity, Selector
from core.schema import ConfigModel
from core.units import Duration, Threshold, parse_threshold

__all__ = ["DEFAULT_RULES", "RuleOverride", "RulePackError", "default_rules", "with_user_rules"]

_SUMMARY_BACKEND = "{{ backend }}: "

_PACK: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "TTFTp50High",
        "expr": "p50(ttft_seconds[5m]) > 500ms",
        "for": "5m",
        "severity": "warning",
        "annotations": {
            "summary": _SUMMARY_BACKEND + "median time to first token {{ value | duration }} "
            "over 5m (threshold {{ threshold | duration }})",
        },
    },
    {
        "name": "TTFTp99High",
        "expr": "p99(ttft_seconds[5m]) > 5s",
        "for": "5m",
        "severity": "warning",
        "annotations": {
            "summary": _SUMMARY_BACKEND + "p99 time to first token {{ value | duration }} "
            "over 5m (threshold {{ threshold | duration }})",
        },
    },
    {
        "name": "ErrorRateHigh",
        "expr": "ratio(request_errors_total, requests_total[5m]) > 1%",
        "for": "5m",
        "severity": "critical",
        "annotations": {
            "summary": _SUMMARY_BACKEND + "{{ value | percent }} of requests failed over 5m "
            "(threshold {{ threshold | percent }})",
        },
    },
    {
        "name": "GPUMemoryHigh",
        "expr": "gpu_memory_used_ratio > 98%",
        "for": "10m",
        "severity": "warning",
        "annotations": {
            "summary": "GPU {{ gpu }} {{ uuid }} memory {{ value | percent }} used "
            "(threshold {{ threshold | percent }})",
        },
    },
    {
        "name": "KVCacheExhausted",
        "expr": "kv_cache_usage_ratio > 95%",
        "for": "5m",
        "severity": "warning",
        "annotations": {
            "summary": _SUMMARY_BACKEND + "KV cache {{ value | percent }} full "
            "(threshold {{ threshold | percent }}): requests wait or are preempted for cache space",
        },
    },
    {
        "name": "QueueDepthHigh",
        "expr": "queue_depth > 100",
        "for": "1m",
        "severity": "warning",
        "annotations": {
            "summary": _SUMMARY_BACKEND + "{{ value }} requests waiting (threshold {{ threshold }})",
        },
    },
    {
        "name": "TokenThroughputDegraded",
        "expr": "baseline(tokens_per_second[5m], median, 24h) < 50%",
        "for": "15m",
        "severity": "warning",
        "annotations": {
            "summary": _SUMMARY_BACKEND + "token throughput at {{ value | percent }} of its "
            "24h median (threshold {{ threshold | percent }})",
        },
    },
    {
        "name": "BackendDown",
        "expr": "up == 0",
        "for": "1m",
        "severity": "critical",
        "annotations": {"summary": _SUMMARY_BACKEND + "scrapes failing for 1m"},
    },
    {
        "name": "CertificateExpiringSoon",
        "expr": "cert_expiry_days < 14",
        "severity": "warning",
        "annotations": {
            "summary": "certificate of {{ target }} expires in {{ value | humanize }} days",
        },
    },
    {
        "name": "AuditCheckRegressed",
        "expr": "audit_check_regressed == 1",
        "severity": "critical",
        "annotations": {
            "summary": "{{ target }}: deployment check {{ check }} fails now; it passed before",
            "description": "A change broke an item of the endpoint's deployment checklist (see the audit "
                           "page for what was observed and the fix).",
        },
    },
    {
        "name": "CertificateExpiryCritical",
        "expr": "cert_expiry_days < 3",
        "severity": "critical",
        "annotations": {
            "summary": "certificate of {{ target }} expires in {{ value | humanize }} days",
        },
    },
)

#: The pack, validated once at import (a typo here fails every test run, not a deployment).
DEFAULT_RULES: Final[tuple[Rule, ...]] = tuple(Rule.model_validate(r) for r in _PACK)


def _names(rules: Iterable[Rule]) -> str:
    return ", ".join(r.name for r in rules)


class RuleOverride(ConfigModel):
    """What ``rule_overrides.<DefaultRule>`` may change: any field of the rule, in config
    spelling, plus ``threshold`` (rewrites the number in ``expr``) and ``enabled: false``."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    enabled: bool = True
    threshold: Threshold | None = None
    expr: str | None = None
    for_: Duration | None = Field(default=None, alias="for")
    keep_firing_for: Duration | None = None
    severity: RuleSeverity | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    selector: Selector | None = None
    no_data: NoData | None = None


class RulePackError(ValueError):
    """An override or a per-backend threshold names no default rule; ``backend`` says whose
    ``alert_thresholds`` (None: ``rule_overrides``)."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(f"per_backend.{backend}: {message}" if backend is not None else f"overrides: {message}")
        self.message = message
        self.backend = backend


def _apply(rule: Rule, override: RuleOverride, per_backend: Mapping[str, float]) -> Rule | None:
    if not override.enabled:
        return None
    data = rule.model_dump(by_alias=True)
    changes = override.model_dump(by_alias=True, exclude_unset=True, exclude={"enabled", "threshold"})
    if override.threshold is not None:
        expr = changes.get("expr", rule.expr)
        changes["expr"] = str(Rule.model_validate({**data, "expr": expr}).parsed.with_threshold(override.threshold))
    data.update(changes)
    data["per_backend"] = {**data["per_backend"], **per_backend}
    return Rule.model_validate(data)


def default_rules(
    overrides: Mapping[str, RuleOverride | Mapping[str, object]] | None = None,
    per_backend: Mapping[str, Mapping[str, float | str]] | None = None,
) -> list[Rule]:
    """The default pack with ``overrides`` and per-backend thresholds applied (both as config
    writes them, or already parsed).

    >>> rules = default_rules({"QueueDepthHigh": {"threshold": 200, "for": "2m"}},
    ...                       {"vllm-a": {"QueueDepthHigh": 50}})
    >>> q = next(r for r in rules if r.name == "QueueDepthHigh")
    >>> q.expr, q.for_, q.threshold_for({"backend": "vllm-a"}), q.threshold_for({"backend": "b"})
    ('queue_depth > 200', 120.0, 50.0, 200.0)

    Raises ``RulePackError`` naming an unknown rule; pydantic's ``ValidationError`` when an
    override makes a rule invalid.
    """
    known = {r.name for r in DEFAULT_RULES}
    parsed: dict[str, RuleOverride] = {}
    for name, override in (overrides or {}).items():
        if name not in known:
            raise RulePackError(f"unknown rule {name!r}; expected one of {_names(DEFAULT_RULES)}")
        parsed[name] = override if isinstance(override, RuleOverride) else RuleOverride.model_validate(override)
    thresholds: dict[str, dict[str, float]] = {}
    for backend, by_rule in (per_backend or {}).items():
        for name, value in by_rule.items():
            if name not in known:
                raise RulePackError(f"unknown rule {name!r}; expected one of {_names(DEFAULT_RULES)}", backend=backend)
            thresholds.setdefault(name, {})[backend] = parse_threshold(value)
    out = []
    for rule in DEFAULT_RULES:
        changed = _apply(rule, parsed.get(rule.name, _UNCHANGED), thresholds.get(rule.name, {}))
        if changed is not None:
            out.append(changed)
    return out


_UNCHANGED: Final = RuleOverride()


def with_user_rules(defaults: Sequence[Rule], user: Sequence[Rule]) -> list[Rule]:
    """Defaults, each replaced by the user rule of the same name, then the other user rules."""
    by_name = {r.name: r for r in user}
    merged = [by_name.pop(r.name, r) for r in defaults]
    return merged + [r for r in user if r.name in by_name]
