"""Check ``exporters.nvml.NvmlReader`` against ``nvidia-smi`` on a machine with an NVIDIA GPU.

Allocates a known block of GPU memory with torch (so "used" is well above the idle level), then
reads every GPU with our reader and with
``nvidia-smi --query-gpu=index,uuid,memory.used,memory.total --format=csv,noheader,nounits``
(MiB), and compares used and total per GPU. Our reading is taken just before and just after
``nvidia-smi``'s, and their mean is compared, so a neighbour's allocation between the two reads
shows up as a wide before/after spread (reported) rather than as a silent error.

Exit status: 0 when every GPU agrees within ``--tolerance`` (relative, default 1 %) on both used
and total, 1 when one does not, 2 when the check cannot run (no torch, no CUDA, no nvidia-smi,
NVML off). Human-readable lines go to stderr; one JSON object per GPU and a summary go to
stdout (``--json`` / redirect them to record the run).

Not part of the test suite (it needs a GPU). Run:

    .venv/bin/python bench/nvml_check.py                 # 4 GiB on cuda:0
    .venv/bin/python bench/nvml_check.py --gib 8 --device 1 > nvml_check.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MIB = 1 << 20
SMI_QUERY = ["--query-gpu=index,uuid,memory.used,memory.total", "--format=csv,noheader,nounits"]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


def read_smi(smi: str) -> dict[str, dict[str, Any]]:
    """``{uuid: {"index": "0", "used_mib": 1234.0, "total_mib": 81559.0}}`` from nvidia-smi."""
    out = subprocess.run([smi, *SMI_QUERY], check=True, capture_output=True, text=True, timeout=60).stdout
    rows: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        index, uuid, used, total = parts
        try:
            rows[uuid] = {"index": index, "used_mib": float(used), "total_mib": float(total)}
        except ValueError:  # "[N/A]" (e.g. a MIG-enabled GPU's memory)
            rows[uuid] = {"index": index, "used_mib": None, "total_mib": None}
    return rows


def _rel(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b == 0:
        return 0.0 if a == 0 else float("inf")
    return abs(a - b) / b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=4.0, help="GiB to allocate with torch (default 4)")
    ap.add_argument("--device", type=int, default=0, help="CUDA device to allocate on (default 0)")
    ap.add_argument("--tolerance", type=float, default=0.01,
                    help="relative difference allowed on used and total (default 0.01)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait after allocating")
    ap.add_argument("--nvidia-smi", default="nvidia-smi", help="nvidia-smi executable")
    args = ap.parse_args(argv)

    # imported here so that --help works without torch or a driver
    from exporters.nvml import NvmlReader

    smi = shutil.which(args.nvidia_smi)
    if smi is None:
        _say(f"cannot run: {args.nvidia_smi} not found")
        return 2
    try:
        import torch
    except ImportError as e:
        _say(f"cannot run: torch is not installed ({e})")
        return 2
    if not torch.cuda.is_available():
        _say("cannot run: torch sees no CUDA device")
        return 2

    reader = NvmlReader()
    status = reader.start()
    _emit({"kind": "status", "enabled": status.enabled, "reason": status.reason,
           "driver_version": status.driver_version, "device_count": status.device_count,
           "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()})
    if not status.enabled:
        _say(f"cannot run: {status.reason}")
        return 2
    try:
        baseline = {g.uuid: g.memory_used_bytes for g in reader.read()}
        nbytes = int(args.gib * (1 << 30))
        block = torch.empty(nbytes, dtype=torch.uint8, device=f"cuda:{args.device}")
        block.fill_(1)  # touch it
        torch.cuda.synchronize(args.device)
        time.sleep(args.settle)

        before = {g.uuid: g for g in reader.read()}
        smi_rows = read_smi(smi)
        after = {g.uuid: g for g in reader.read()}
    finally:
        reader.close()

    failures = 0
    compared = 0
    for uuid, row in sorted(smi_rows.items(), key=lambda kv: int(kv[1]["index"])):
        g0, g1 = before.get(uuid), after.get(uuid)
        rec: dict[str, Any] = {"kind": "gpu", "index": row["index"], "uuid": uuid,
                               "smi_used_mib": row["used_mib"], "smi_total_mib": row["total_mib"]}
        if g0 is None or g1 is None or g0.memory_used_bytes is None or g1.memory_used_bytes is None:
            seen = g1 or g0
            rec.update(ok=False, error="not read by NvmlReader",
                       errors=list(seen.errors) if seen is not None else [])
            failures += 1
            _emit(rec)
            _say(f"GPU {row['index']} {uuid}: NvmlReader has no memory reading")
            continue
        ours_used = (g0.memory_used_bytes + g1.memory_used_bytes) / 2 / MIB
        ours_total = g1.memory_total_bytes / MIB if g1.memory_total_bytes is not None else None
        spread = abs(g1.memory_used_bytes - g0.memory_used_bytes) / MIB
        d_used, d_total = _rel(ours_used, row["used_mib"]), _rel(ours_total, row["total_mib"])
        ok = (d_used is not None and d_used <= args.tolerance
              and d_total is not None and d_total <= args.tolerance)
        base = baseline.get(uuid)
        rec.update(
            ours_used_mib=round(ours_used, 1), ours_total_mib=ours_total,
            ours_spread_mib=spread, rel_diff_used=d_used, rel_diff_total=d_total,
            allocated_mib=nbytes / MIB if int(row["index"]) == args.device else 0,
            used_increase_mib=None if base is None else (g1.memory_used_bytes - base) / MIB,
            name=g1.name, errors=list(g1.errors), ok=ok,
        )
        compared += 1
        failures += 0 if ok else 1
        _emit(rec)
        _say(f"GPU {row['index']} {uuid} {g1.name}: used ours {ours_used:.1f} MiB vs nvidia-smi "
             f"{row['used_mib']} MiB (diff {_pct(d_used)}), total ours {ours_total} vs {row['total_mib']} "
             f"(diff {_pct(d_total)}), spread {spread:.1f} MiB -> {'OK' if ok else 'MISMATCH'}")
    del block
    _emit({"kind": "summary", "compared": compared, "failures": failures, "tolerance": args.tolerance,
           "allocated_gib": args.gib, "device": args.device})
    if compared == 0:
        _say("nothing compared")
        return 1
    return 0 if failures == 0 else 1


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.3f} %"


if __name__ == "__main__":
    sys.exit(main())
