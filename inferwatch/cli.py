"""``inferwatch`` command line: run | demo | check-config. Wiring only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.routing import Router
from core.build import VERSION
from inferwatch.audit_cli import add_audit_command
from inferwatch.config import Config, ConfigError, load
from inferwatch.oncall import add_commands
from inferwatch.startup import StartupError, check_port, open_stores, shown_url

if TYPE_CHECKING:
    import uvicorn

    from inferwatch.service import Service

log = logging.getLogger("inferwatch")


def catch_stop_signals(server: uvicorn.Server) -> None:
    """SIGTERM and SIGINT stop inferwatch gracefully. uvicorn catches them while it serves, shuts
    the web server down, restores the handlers it found and raises the signal again: these
    handlers then let ``serve()`` return so that the service's own stop runs (scrapes written,
    the outbox handed over). A signal that comes before uvicorn serves asks it to stop as soon as
    it starts. A further signal during the stop exits at once."""
    seen: list[int] = []

    def on_signal(sig: int, frame: object) -> None:
        seen.append(sig)
        server.should_exit = True
        if len(seen) > 1:
            os._exit(128 + sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


async def _watch_exit(server: uvicorn.Server, service: Service) -> None:
    """Tell the service as soon as uvicorn begins to shut down (it sets ``should_exit``)."""
    while not server.should_exit:
        await asyncio.sleep(0.1)
    service.stopping()


def _serve(cfg: Config, extra: object = None, banner: str | None = None, config_path: Path | None = None) -> int:
    from inferwatch.service import Service, settle_heap
    from storage.retention import Retention

    check_port(cfg.web.host, cfg.web.port, "web.listen in the config")
    store = open_stores(cfg.storage, Retention(cfg.retention.raw, cfg.retention.rollups, cfg.retention.rollup_step))

    async def main() -> None:
        service = Service(cfg, store, config_path=config_path)
        server = service.server()
        await service.start()
        settle_heap()
        catch_stop_signals(server)
        reloads: set[asyncio.Task[tuple[bool, str]]] = set()

        def on_hup() -> None:  # SIGHUP: reload the config file, as Prometheus does
            task = asyncio.create_task(service.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        if config_path is not None and hasattr(signal, "SIGHUP"):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
        if banner:
            log.info("%s", banner)
        watcher = asyncio.create_task(_watch_exit(server, service))
        try:
            await server.serve()
        finally:
            watcher.cancel()
            await service.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"inferwatch: refusing to start, the config has problems:\n{exc}", file=sys.stderr)
        return 2
    banner = (f"inferwatch {VERSION}: {len(cfg.backends)} backends, storage {shown_url(cfg.storage)}, "
              f"dashboard http://{cfg.web.listen}/")
    return _serve(cfg, banner=banner, config_path=args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.config}: OK ({len(cfg.backends)} backends)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from inferwatch.config import parse
    from sim.fleet import IncidentScript, build, demo_config, demo_tls
    from sim.server import SimFleet

    check_port(args.host, args.port, "--port (make demo PORT=8001)")

    async def main() -> int:
        from inferwatch.service import Service, settle_heap

        workdir = Path(tempfile.mkdtemp(prefix="inferwatch-demo-"))
        contexts, ca_file = demo_tls(workdir)
        fleet = SimFleet(build(), ssl=contexts)
        await fleet.start()
        cfg = parse(demo_config(fleet, storage=args.storage, listen=f"{args.host}:{args.port}",
                                interval=args.interval, ca_file=ca_file), "<demo>")
        try:
            store = open_stores(cfg.storage)
        except StartupError:
            await fleet.stop()
            raise
        service = Service(cfg, store)
        server = service.server()
        await service.start()
        settle_heap()
        catch_stop_signals(server)
        script = asyncio.create_task(IncidentScript(fleet, period=args.incident_period).run())
        print(f"inferwatch demo ({VERSION}): {len(cfg.backends)} simulated backends, storage {shown_url(cfg.storage)}\n"
              f"  dashboard  http://{cfg.web.listen}/\n"
              f"  JSON API   http://{cfg.web.listen}/api/v1/backends\n"
              f"  metrics    http://{cfg.web.listen}/metrics\n"
              f"Incidents rotate every {args.incident_period:g}s. Ctrl-C stops.", flush=True)
        try:
            if args.duration:  # stop the way Ctrl-C does, after --duration seconds
                asyncio.get_running_loop().call_later(args.duration, setattr, server, "should_exit", True)
            watcher = asyncio.create_task(_watch_exit(server, service))
            await server.serve()
            watcher.cancel()
        finally:
            script.cancel()
            await service.stop()
            await fleet.stop()
            store.close()
            shutil.rmtree(workdir, ignore_errors=True)
        return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0


def cmd_grafana(args: argparse.Namespace) -> int:
    from alerts.rulepack import DEFAULT_RULES
    from alerts.rules import Rule
    from alerts.slo import SLO
    from dashboards.grafana import write_all

    rules: tuple[Rule, ...] = DEFAULT_RULES
    slos: tuple[SLO, ...] = ()
    if args.config is not None:
        try:
            cfg = load(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        rules, slos = tuple(cfg.rules_in_force), tuple(cfg.slos)
    try:
        written = write_all(args.output, rules, slos)
    except OSError as exc:
        print(f"inferwatch grafana: cannot write into {args.output}: {exc.strerror or exc}; "
              "choose a folder you can write with -o", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def cmd_prometheus_rules(args: argparse.Namespace) -> int:
    import yaml

    from alerts.promrules import export_rules, unit_tests

    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    exported = export_rules(cfg.rules_in_force, cfg.slos)
    tests, untested = unit_tests([r for r in cfg.rules_in_force if r.name not in exported.skipped],
                                 "inferwatch-rules.yaml", [s for s in cfg.slos if f"SLO {s.name}" not in exported.skipped])
    try:
        args.output.mkdir(parents=True, exist_ok=True)
        rules_path, tests_path = args.output / "inferwatch-rules.yaml", args.output / "inferwatch-rules.test.yaml"
        rules_path.write_text(yaml.safe_dump(exported.document(), sort_keys=False, width=120))
        tests_path.write_text(yaml.safe_dump(tests, sort_keys=False, width=120))
    except OSError as exc:
        print(f"inferwatch prometheus-rules: cannot write into {args.output}: {exc.strerror}; "
              "choose a writable folder with -o", file=sys.stderr)
        return 1
    print(rules_path)
    print(tests_path)
    for name, reason in sorted(exported.skipped.items()):
        print(f"not exported: {name}: {reason}", file=sys.stderr)
    for name, reason in sorted(untested.items()):
        print(f"no unit test: {name}: {reason}", file=sys.stderr)
    return 0


def cmd_test_rules(args: argparse.Namespace) -> int:
    """Run rule unit tests written like ``promtool test rules`` (``alerts/ruletests.py``)."""
    import yaml

    from alerts.rules import Rule
    from alerts.ruletests import RuleTestError, parse_tests, run_test
    from core.units import parse_duration

    failed = False
    for path in args.files:
        print(f"Unit Testing: {path}")
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise RuleTestError("the file must hold a mapping with rule_files and tests")
            interval = parse_duration(doc.get("evaluation_interval", "1m"))
            rules: dict[str, Rule] = {}
            files = doc.get("rule_files")
            if not isinstance(files, list) or not files:
                raise RuleTestError("rule_files: expected a list of config or rule files")
            for rf in files:
                for rule in load(Path(path).parent / str(rf)).rules_in_force:
                    rules[rule.name] = rule
            cases = parse_tests(doc, interval)
        except (OSError, ValueError, yaml.YAMLError, ConfigError) as exc:
            print(f"  FAILED: {exc}")
            failed = True
            continue
        failures = [f for case in cases for f in run_test(case, list(rules.values()), interval)]
        if failures:
            failed = True
            print("  FAILED:")
            for f in failures:
                print("    " + str(f).replace("\n", "\n    "))
        else:
            print(f"  SUCCESS ({len(cases)} tests, {sum(len(c.checks) for c in cases)} checks)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inferwatch", description="Observability and SLO monitoring for LLM inference fleets.")
    p.add_argument("--log-level", type=log_level, default=os.environ.get("INFERWATCH_LOG_LEVEL", "info"),
                   help=f"{' | '.join(LOG_LEVELS)} (default info; debug also shows tracebacks)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="collector + web in one process")
    run.add_argument("-c", "--config", default="inferwatch.yaml", type=Path)
    run.set_defaults(func=cmd_run)
    chk = sub.add_parser("check-config", help="validate a config file and print every problem")
    chk.add_argument("-c", "--config", default="inferwatch.yaml", type=Path)
    chk.set_defaults(func=cmd_check_config)
    demo = sub.add_parser("demo", help="simulated fleet + collector + web, on SQLite")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--storage", default="sqlite:///inferwatch-demo.db")
    demo.add_argument("--interval", default="5s", help="scrape interval (default 5s)")
    demo.add_argument("--incident-period", type=float, default=150.0,
                      help="seconds each scripted incident lasts (long enough for 1m `for:` rules to fire)")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)
    graf = sub.add_parser("grafana", help="write Grafana dashboards and provisioning into a folder")
    graf.add_argument("-o", "--output", default="grafana", type=Path,
                      help="folder for dashboards/*.json and provisioning/ (default: grafana)")
    graf.add_argument("-c", "--config", default=None, type=Path,
                      help="draw the thresholds of this config's rules and SLOs (default: the default pack)")
    graf.set_defaults(func=cmd_grafana)
    prom = sub.add_parser("prometheus-rules", help="write our rules and SLOs as Prometheus rules, with promtool tests")
    prom.add_argument("-c", "--config", default="inferwatch.yaml", type=Path)
    prom.add_argument("-o", "--output", default="prometheus", type=Path,
                      help="folder for inferwatch-rules.yaml and inferwatch-rules.test.yaml (default: prometheus)")
    prom.set_defaults(func=cmd_prometheus_rules)
    tr = sub.add_parser("test-rules", help="run rule unit tests written like promtool test rules")
    tr.add_argument("files", nargs="+", type=Path)
    tr.set_defaults(func=cmd_test_rules)
    add_commands(sub, _router_of)
    add_audit_command(sub)
    return p


def _router_of(path: str) -> Router | None:
    """The routing of the config at ``path``; None (the problems printed) when it is invalid."""
    try:
        return load(Path(path)).router
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def log_level(text: str) -> int:
    """``--log-level``: one of ``LOG_LEVELS`` (any case)."""
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    level: int = getattr(logging, text.upper())
    return level


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # one line per scrape request, and alembic's per-start chatter, are noise, not news
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))
    try:
        return int(args.func(args))
    except StartupError as exc:
        if level <= logging.DEBUG:
            raise
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
