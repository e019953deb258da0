"""``inferwatch audit URL``: the deployment checklist (``exporters.audit``) run once, from a terminal.

Prints a table (or ``--json``) and exits 1 when any check fails, 0 otherwise (warnings and skips
do not fail a run), 2 on a usage error. The API key is read from the environment variable named by
``--api-key-env`` — never from the command line, where it would sit in the shell history and in
``ps`` — and is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from argparse import _SubParsersAction as SubParsers
from collections.abc import Sequence
from urllib.parse import urlsplit

from core.audit import CHECKS, GROUPS, AuditResult
from dashboards.audits import run_json
from exporters.audit import AuditSpec, run_audit
from exporters.resolver import split_nameserver

__all__ = ["add_audit_command", "format_table"]

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
_COLOUR = {"pass": "32", "warn": "33", "fail": "31;1", "skip": "2"}


def _paint(text: str, status: str, colour: bool) -> str:
    return f"\033[{_COLOUR[status]}m{text}\033[0m" if colour else text


def format_table(result: AuditResult, *, colour: bool = False) -> str:
    """The run as a terminal table: a headline, then each group's checks with status, what was
    observed and, below a failing or warning check, its fix."""
    c = result.counts()
    ran = len(result.checks) - c["skip"]
    lines = [f"inferwatch audit {result.url}",
             f"{ran} checks: {c['pass']} pass, {c['warn']} warn, {c['fail']} fail"
             + (f" ({c['skip']} skipped)" if c["skip"] else "") + f" in {result.duration:.1f}s", ""]
    width = max(len(name) for name in CHECKS)
    by_group: dict[str, list[str]] = {}
    for r in result.checks:
        group = CHECKS[r.check][0] if r.check in CHECKS else "other"
        rows = by_group.setdefault(group, [])
        rows.append(f"  {_paint(_MARK[r.status], r.status, colour)}  {r.check:<{width}}  {r.observed}")
        if r.fix and r.status in ("warn", "fail"):
            rows.append(f"        {'':<{width}}  fix: {r.fix}")
    for group, title in GROUPS.items():
        if group in by_group:
            lines.append(title)
            lines += by_group[group]
    if "other" in by_group:
        lines += ["Other", *by_group["other"]]
    return "\n".join(lines)


def _skip_list(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(n for n in names if n not in CHECKS and n not in GROUPS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown check {unknown[0]!r}; expected a group ({', '.join(GROUPS)}) "
                                         f"or a check ({', '.join(CHECKS)})")
    return names


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 1000:
        raise argparse.ArgumentTypeError(f"{n} is out of range (1 to 1000)")
    return n


def _stream_tokens(text: str) -> int:
    n = _positive(text)
    if not 8 <= n <= 256:  # the probe keeps at most 256 gaps in arrival order
        raise argparse.ArgumentTypeError(f"{n} is out of range (8 to 256)")
    return n


def _seconds(text: str) -> float:
    from core.units import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def cmd_audit(args: argparse.Namespace) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"inferwatch audit: {args.url!r} is not an http(s) URL; give the API's base URL, "
              "e.g. https://api.example.com", file=sys.stderr)
        return 2
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            print(f"inferwatch audit: --api-key-env {args.api_key_env}: that environment variable is not set "
                  f"(export {args.api_key_env}=… first)", file=sys.stderr)
            return 2
    if args.nameserver and split_nameserver(args.nameserver) is None:
        print(f"inferwatch audit: --nameserver {args.nameserver}: expected an IP address, optionally with :port",
              file=sys.stderr)
        return 2
    if args.ca_file and not os.path.isfile(args.ca_file):
        print(f"inferwatch audit: --ca-file {args.ca_file}: no such file", file=sys.stderr)
        return 2
    spec = AuditSpec(name=args.url, url=args.url.rstrip("/"), model=args.model, api_key=key, api=args.api,
                     burst=args.burst, stream_tokens=args.stream_tokens, long_tokens=args.long_tokens,
                     timeout=args.timeout, long_timeout=args.long_timeout, nameserver=args.nameserver,
                     ca_file=args.ca_file, skip=args.skip)
    result = asyncio.run(run_audit(spec))
    if args.json:
        print(json.dumps(run_json(result), indent=2))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(format_table(result, colour=colour))
    return 1 if result.failed else 0


def add_audit_command(sub: SubParsers[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("audit", help="run the deployment checklist (DNS, TLS, headers, streaming, rate limit, "
                                     "auth) against an inference API once",
                       description="Exit status: 0 no check failed, 1 a check failed, 2 usage error.")
    a.add_argument("url", help="the API's base URL, e.g. https://api.example.com (or …/v1)")
    a.add_argument("--json", action="store_true", help="print the result as JSON")
    a.add_argument("--model", help="model to call (default: the first one /v1/models lists)")
    a.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key (sent as Bearer)")
    a.add_argument("--api", choices=("chat", "completions"), default="chat", help="endpoint flavour (default chat)")
    a.add_argument("--burst", type=_positive, default=20, help="requests sent at once by the rate-limit check (20)")
    a.add_argument("--stream-tokens", type=_stream_tokens, default=64,
                   help="tokens of the incremental-streaming check's generation (64; 8 to 256)")
    a.add_argument("--long-tokens", type=_positive, default=1024,
                   help="tokens of the long generation that must not be cut (1024)")
    a.add_argument("--timeout", type=_seconds, default=30.0, help="per request, e.g. 30s (default)")
    a.add_argument("--long-timeout", type=_seconds, default=600.0, help="for the long generation (10m)")
    a.add_argument("--nameserver", help="DNS server (ip or ip:port) instead of the system resolver")
    a.add_argument("--ca-file", help="CA bundle to trust instead of the system store")
    a.add_argument("--skip", type=_skip_list, default=frozenset(),
                   help="comma-separated checks or groups not to run, e.g. rate_limit,stream_long")
    a.set_defaults(func=cmd_audit)


def main(argv: Sequence[str]) -> int:
    """For tests: parse ``argv`` as ``inferwatch audit`` would."""
    p = argparse.ArgumentParser(prog="inferwatch")
    add_audit_command(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["audit", *argv])
    return int(args.func(args))
