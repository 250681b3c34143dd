"""What every benchmark shares: the machine and commit record, medians, and result files."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> list[str]:
    script = BIN / name
    return [str(script)] if script.exists() else [name]


def machine() -> dict:
    import msgpack
    import zmq
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {
        "host": platform.node(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "kernel": platform.release(), "python": platform.python_version(),
        "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "msgpack": ".".join(map(str, msgpack.version)),
        "commit": commit or "unknown", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_measured(cmd: list[str], cwd: Path, stdin: bytes | None = None,
                 env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command and every process under it that was waited
    for: on a machine with few cores a CPU-bound run can be no faster than CPU / cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, input=stdin, env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {res.stderr.decode(errors='replace')[-1000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_results(name: str, rows: list[dict], columns: list[str], notes: str = "") -> Path:
    """bench/results/NAME.json and NAME.md: the rows, with the machine they ran on."""
    RESULTS.mkdir(exist_ok=True)
    record = {"benchmark": name, "machine": machine(), "rows": rows, "notes": notes}
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    m = record["machine"]
    lines = [f"# {name}", "",
             f"{m['when']}, commit {m['commit']}, {m['cpus']} CPUs {m['machine']}, Linux {m['kernel']}, "
             f"Python {m['python']}, pyzmq {m['pyzmq']} (libzmq {m['libzmq']}), msgpack {m['msgpack']}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    if notes:
        lines += ["", notes]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def finish(name: str, rows: list[dict], keep: dict, notes: str) -> int:
    """Append the median row (numeric columns), write the results, print the table."""
    numeric = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k not in keep and k != "round"]
    rows.append({"round": "median", **keep, **{k: median([r[k] for r in rows]) for k in numeric}})
    print(write_results(name, rows, list(rows[0]), notes).read_text())
    return 0


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
