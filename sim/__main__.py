"""``python -m sim --backends 1000 --engine vllm --models 4 --urls-file urls.json``: serve a uniform simulated
fleet on loopback from this process (benchmarks, manual testing) until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from sim.fleet import uniform
from sim.server import SimFleet


async def _main(args: argparse.Namespace) -> None:
    fleet = SimFleet(uniform(args.backends, args.engine, args.variant, models=args.models), host=args.host)
    await fleet.start()
    urls = {name: fleet.url(name) for name in fleet.backends}
    text = json.dumps(urls, indent=1)
    if args.urls_file:
        tmp = Path(str(args.urls_file) + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.urls_file)
    else:
        print(text, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fleet.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    p.add_argument("--backends", type=int, default=10)
    p.add_argument("--engine", default="vllm")
    p.add_argument("--variant", default=None)
    p.add_argument("--models", type=int, default=1, help="models per backend (1 to 4)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--urls-file", type=Path, default=None)
    asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
