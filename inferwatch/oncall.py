"""The on-call command line, like ``amtool``: ``inferwatch alerts``, ``inferwatch silence
add|list|expire`` talk to a running inferwatch over its HTTP API (``--url``, default
``$INFERWATCH_URL`` or ``http://127.0.0.1:8000``; ``--token``, default ``$INFERWATCH_TOKEN``, sent
as ``Authorization: Bearer``, the same tokens as ``web.auth.tokens``); ``inferwatch routes test``
reads a config file and says which receivers an alert with those labels reaches.

Matchers on the command line are ``label=value`` or ``label=~regex`` (anchored, as in
Alertmanager). Errors are one line on stderr naming what to fix; exit code 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from alerts.routing import Router
from alerts.templates import format_duration

DEFAULT_URL = "http://127.0.0.1:8000"
_MATCHER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|=)(.*)$")


class UsageError(ValueError):
    """A bad argument: the message says which and how to write it."""


def parse_matchers(items: Sequence[str]) -> dict[str, str]:
    """``["backend=vllm-a", "alertname=~TTFT.*"]`` -> the API's ``{label: value | "=~regex"}``.

    >>> parse_matchers(["backend=vllm-a", "alertname=~TTFT.*"])
    {'backend': 'vllm-a', 'alertname': '=~TTFT.*'}
    """
    out: dict[str, str] = {}
    for item in items:
        m = _MATCHER.match(item)
        if m is None:
            raise UsageError(f"matcher {item!r}: write label=value or label=~regex (e.g. backend=vllm-a)")
        name, op, value = m.groups()
        if op == "=~":
            try:
                re.compile(value)
            except re.error as exc:
                raise UsageError(f"matcher {item!r}: invalid regex: {exc}") from None
        out[name] = f"=~{value}" if op == "=~" else value
    return out


def matches(labels: Mapping[str, str], matchers: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every matcher (a missing label is the empty string)."""
    for name, want in matchers.items():
        got = labels.get(name, "")
        if want.startswith("=~"):
            if re.fullmatch(want[2:], got) is None:
                return False
        elif got != want:
            return False
    return True


class Api:
    """A running inferwatch's API, with the CLI's URL and token."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise UsageError(f"cannot reach inferwatch at {self.url}: {type(exc).__name__}; "
                             "is it running? set --url or INFERWATCH_URL") from None
        if resp.status_code in (401, 403):
            raise UsageError(f"{self.url} refused the request (HTTP {resp.status_code}): "
                             "pass a token of web.auth.tokens with --token or INFERWATCH_TOKEN")
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise UsageError(f"{method} {path}: HTTP {resp.status_code}: {detail}")
        return resp.json()


def _labels(labels: Mapping[str, str], skip: Sequence[str] = ("alertname",)) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def cmd_alerts(args: argparse.Namespace, api: Api) -> int:
    matchers = parse_matchers(args.matchers)
    doc = api.call("GET", "/api/v1/alerts", params={"state": args.state} if args.state else None)
    active = [a for a in doc["active"] if matches(a["labels"], matchers)]
    if args.json:
        print(json.dumps(active, indent=2))
        return 0
    now = time.time()
    rows = []
    for a in active:
        since = a.get("fired_at") or a.get("active_since")
        rows.append([a["labels"].get("alertname", a["rule"]), a["state"],
                     f"{format_duration(now - since)} ago" if since else "-",
                     a["annotations"].get("summary", ""), _labels(a["labels"])])
    print(_table(rows, ["ALERTNAME", "STATE", "SINCE", "SUMMARY", "LABELS"]) if rows else "no active alerts")
    return 0


def cmd_silence_add(args: argparse.Namespace, api: Api) -> int:
    matchers = parse_matchers(args.matchers)
    if not matchers:
        raise UsageError("silence add: give at least one matcher, e.g. backend=vllm-a alertname=~TTFT.*")
    body = {"matchers": matchers, "duration": args.duration, "comment": args.comment,
            "created_by": args.author or os.environ.get("USER") or "inferwatch-cli"}
    doc = api.call("POST", "/api/v1/silences", json=body)
    print(doc["id"])
    return 0


def cmd_silence_list(args: argparse.Namespace, api: Api) -> int:
    docs = api.call("GET", "/api/v1/silences", params={"state": args.state} if args.state else None)
    if args.json:
        print(json.dumps(docs, indent=2))
        return 0
    now = time.time()
    rows = [[d["id"], d["state"], ", ".join(f"{k}={v}" if not v.startswith("=~") else f"{k}{v}"
                                             for k, v in d["matchers"].items()),
             f"in {format_duration(d['ends_at'] - now)}" if d["ends_at"] > now else "ended",
             d["created_by"], d["comment"]] for d in docs]
    print(_table(rows, ["ID", "STATE", "MATCHERS", "ENDS", "CREATED BY", "COMMENT"]) if rows else "no silences")
    return 0


def cmd_silence_expire(args: argparse.Namespace, api: Api) -> int:
    for sid in args.ids:
        api.call("DELETE", f"/api/v1/silences/{sid}")
        print(f"expired {sid}")
    return 0


def routes_test(router: Router, labels: Mapping[str, str]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """The receivers an alert with ``labels`` reaches, each with its group labels."""
    return [(r.receiver, r.group(labels)) for r in router.routes_for(labels)]


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or value.startswith("~"):
            raise UsageError(f"label {item!r}: write label=value (e.g. severity=critical)")
        out[name] = value
    return out


SubParsers = argparse._SubParsersAction  # noqa: SLF001 - argparse's own type for add_subparsers()
Command = Callable[[argparse.Namespace, "Api"], int]


def add_commands(sub: SubParsers[argparse.ArgumentParser], load_router: Callable[[str], Router | None]) -> None:
    """The on-call subcommands on ``inferwatch``'s parser. ``load_router(path) -> Router`` reads
    a config (the composition root provides it)."""
    def api_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=os.environ.get("INFERWATCH_URL", DEFAULT_URL),
                       help="a running inferwatch (default $INFERWATCH_URL or http://127.0.0.1:8000)")
        p.add_argument("--token", default=os.environ.get("INFERWATCH_TOKEN"),
                       help="a web.auth token (default $INFERWATCH_TOKEN)")

    al = sub.add_parser("alerts", help="list active alerts of a running inferwatch (like amtool alert query)")
    api_args(al)
    al.add_argument("matchers", nargs="*", help="label=value or label=~regex filters")
    al.add_argument("--state", choices=("firing", "pending"))
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=_with_api(cmd_alerts))

    si = sub.add_parser("silence", help="add, list or expire silences of a running inferwatch")
    ss = si.add_subparsers(dest="action", required=True)
    add = ss.add_parser("add", help="silence the alerts matching every matcher")
    api_args(add)
    add.add_argument("matchers", nargs="+", help="label=value or label=~regex")
    add.add_argument("-d", "--duration", default="1h", help="how long (default 1h)")
    add.add_argument("-m", "--comment", required=True, help="why (shown with the silence)")
    add.add_argument("-a", "--author", default=None, help="who (default $USER)")
    add.set_defaults(func=_with_api(cmd_silence_add))
    ls = ss.add_parser("list", help="list silences")
    api_args(ls)
    ls.add_argument("--state", choices=("active", "pending", "expired"))
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_with_api(cmd_silence_list))
    ex = ss.add_parser("expire", help="end silences now")
    api_args(ex)
    ex.add_argument("ids", nargs="+")
    ex.set_defaults(func=_with_api(cmd_silence_expire))

    ro = sub.add_parser("routes", help="which receivers an alert reaches (like amtool config routes test)")
    rs = ro.add_subparsers(dest="action", required=True)
    test = rs.add_parser("test", help="print the receivers an alert with these labels reaches")
    test.add_argument("-c", "--config", default="inferwatch.yaml")
    test.add_argument("labels", nargs="+", help="label=value, e.g. alertname=QueueDepthHigh severity=critical")

    def run_test(args: argparse.Namespace) -> int:
        try:
            labels = parse_labels(args.labels)
        except UsageError as exc:
            print(f"inferwatch routes test: {exc}", file=sys.stderr)
            return 2
        router = load_router(args.config)
        if router is None:
            return 2
        found = routes_test(router, labels)
        if not found:
            print("no receiver: no route matches and there is no default_receiver")
            return 1
        for receiver, group in found:
            print(f"{receiver}  (group {{{', '.join(f'{k}={v!r}' for k, v in group)}}})")
        return 0

    test.set_defaults(func=run_test)


def _with_api(fn: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        api = Api(args.url, args.token)
        try:
            return int(fn(args, api))
        except UsageError as exc:
            print(f"inferwatch {args.command}: {exc}", file=sys.stderr)
            return 1
    return run
