"""What every benchmark shares: the programs and their environment, the machine and commit
record, measured runs, medians, and result files."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rake_common.config import usable_cpus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NO_CONFIG = "/nonexistent/rake-bench-config"
# The console scripts' modules (pyproject.toml [project.scripts] -> rake_common.entry), each
# of which runs entry's start-up when run as __main__.
MODULES = {"rake-broker": "broker.main", "rake-worker": "worker.main", "rake-submit": "submitter.main"}
SKIPPED = 77   # exit status of a benchmark whose required program is missing (as automake's tests)


def tool(name: str) -> list[str]:
    """A rake program run from this source tree (bench_env puts it first on PYTHONPATH), so an
    installed snapshot of another commit can never be what is measured."""
    return [sys.executable, "-m", MODULES[name]]


def bench_env(**extra: str) -> dict[str, str]:
    """One environment for every rake program of every benchmark: none of the user's broker,
    config files or colour settings, and the source tree's packages first."""
    env = dict(os.environ)
    for name in ("RAKE_BROKER", "NO_COLOR", "FORCE_COLOR"):
        env.pop(name, None)
    env["RAKE_SYSTEM_CONFIG"] = NO_CONFIG + "/etc.toml"
    env["XDG_CONFIG_HOME"] = NO_CONFIG
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def jobs_flag(jobs: int) -> list[str]:
    """rake-submit's -j when the benchmark's parallelism differs from the embedded cluster's
    slots (one per usable CPU), so rake never runs with more or fewer than its baseline."""
    return [] if jobs == usable_cpus() else ["-j", str(jobs)]


def slots() -> str:
    """The embedded local cluster's slots, as the notes say them."""
    n = usable_cpus()
    return f"{n} slot{'s' if n != 1 else ''}"


def require(*programs: str) -> None:
    """Exit with SKIPPED and one line when a program the benchmark cannot do without is missing."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        print(f"{Path(sys.argv[0]).stem}: skipped: {', '.join(missing)} not on PATH", file=sys.stderr)
        sys.exit(SKIPPED)


@functools.lru_cache(maxsize=None)
def describe() -> str:
    """`git describe --always` of the tree measured, with "-dirty" if anything but the
    results differs from it (a full run rewrites bench/results/ as it goes: the benchmarks
    after the first must not call their own tree dirty), or "unknown" without git or a checkout."""
    try:
        res = subprocess.run(["git", "describe", "--always"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)bench/results"],
                                 cwd=ROOT, capture_output=True, timeout=30).returncode
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if res.returncode or not res.stdout.strip():
        return "unknown"
    return res.stdout.strip() + ("-dirty" if changed else "")


def program_version(cmd: list[str]) -> str:
    """The first line a program prints for its version, or "unknown"."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (res.stdout or res.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine() -> dict:
    import msgpack
    import zmq
    return {
        "host": platform.node(), "cpus": os.cpu_count(), "usable cpus": usable_cpus(),
        "machine": platform.machine(), "kernel": platform.release(), "python": platform.python_version(),
        "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "msgpack": ".".join(map(str, msgpack.version)),
        "commit": describe(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def parse(p: argparse.ArgumentParser, sizes: tuple[str, ...]) -> argparse.Namespace:
    """Parse the arguments, and settle at the start what the record needs: the commit (git
    may be missing) and the mode. A run at every default size is `full` and writes to
    bench/results/; `--quick` or any other size writes to bench/results/quick/."""
    p.add_argument("--quick", action="store_true", help="write to bench/results/quick/ (as python -m bench does)")
    args = p.parse_args()
    _check_tree(p)
    _compile_tree()
    describe()
    custom = any(getattr(args, k) != p.get_default(k) for k in sizes)
    args.run = {"mode": "quick" if args.quick else "custom" if custom else "full",
                "argv": [p.prog, *sys.argv[1:]], "sizes": {k: getattr(args, k) for k in sizes},
                "versions": {}}
    return args


PACKAGES = ("broker", "worker", "submitter", "protocol", "rake_common", "rakeauth")   # pyproject.toml


def _compile_tree() -> None:
    """Byte-compile the tree once, as pip does an installed package: where PYTHONDONTWRITEBYTECODE
    is set (this machine sets it), every start of a program would compile its modules again,
    some 50 ms that no installed rake pays."""
    import compileall
    for package in PACKAGES:
        compileall.compile_dir(str(ROOT / package), quiet=2)


def _check_tree(p: argparse.ArgumentParser) -> None:
    """What this process imports of rake (latency's embedded cluster, the protocol) must come
    from the tree whose commit is recorded, as the programs run by tool() do."""
    import protocol
    import submitter
    for module in (protocol, submitter):
        if ROOT not in Path(module.__file__).resolve().parents:
            p.error(f"{module.__name__} is imported from {module.__file__}, not from {ROOT}: "
                    "run from the repository root")


def start_broker(env: dict, procs: list) -> tuple[subprocess.Popen, str]:
    """A rake-broker on a free loopback port, added to `procs` at once (the caller stops it):
    the process and the endpoint it printed."""
    broker = subprocess.Popen(tool("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "-q"],
                              stdout=subprocess.PIPE, env=env)
    procs.append(broker)
    endpoint = broker.stdout.readline().decode().strip()
    if not endpoint.startswith("tcp://"):
        raise RuntimeError(f"rake-broker printed {endpoint!r} instead of its endpoint")
    return broker, endpoint


def run_measured(cmd: list[str], cwd: Path, stdin: bytes | None = None, env: dict | None = None,
                 timeout: float = 300) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stderr) of a command and every process under it that was
    waited for: on a machine with few cores a CPU-bound run can be no faster than CPU / cores.
    Killed (by its pid) after `timeout` seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)} did not end within {timeout:g} s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = err.decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} failed with status {proc.returncode}: {text[-1000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), text


@contextlib.contextmanager
def interrupt_deferred():
    """A Ctrl-C during the block (the one `python -m bench` passes on may land in a clean-up)
    is raised when it ends, so the clean-up runs to the end."""
    got = []
    old = signal.signal(signal.SIGINT, lambda *_: got.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process still running (last started first), wait up to 10 s in all, then
    SIGKILL any left: each by its pid."""
    with interrupt_deferred():
        _stop(procs)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_results(name: str, rows: list[dict], columns: list[str], notes: str, run: dict) -> Path:
    """NAME.json and NAME.md, with the machine, mode, argv and sizes; in bench/results/ for a
    full run, bench/results/quick/ otherwise. Both are written whole, then renamed into place."""
    where = RESULTS if run["mode"] == "full" else RESULTS / "quick"
    where.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "machine": machine(), **run, "rows": rows, "notes": notes}
    m, sizes = record["machine"], ", ".join(f"{k} {v}" for k, v in run["sizes"].items())
    versions = "".join(f", {k} {v}" for k, v in run["versions"].items())
    lines = [f"# {name}", "",
             f"{m['when']}, commit {m['commit']}, {m['usable cpus']} of {m['cpus']} CPUs {m['machine']}, "
             f"Linux {m['kernel']}, Python {m['python']}, pyzmq {m['pyzmq']} (libzmq {m['libzmq']}), "
             f"msgpack {m['msgpack']}{versions}", "",
             f"{run['mode']} mode ({sizes}): `{' '.join(run['argv'])}`", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    texts = {where / f"{name}.json": json.dumps(record, indent=2) + "\n", where / f"{name}.md": "\n".join(lines) + "\n"}
    for path, text in texts.items():
        Path(f"{path}.tmp").write_text(text)
    for path in texts:
        os.replace(f"{path}.tmp", path)
    return where / f"{name}.md"


def finish(name: str, rows: list[dict], keep: dict, notes: str, run: dict) -> int:
    """Append the median row (numeric columns, over the rounds that have them), write the
    results, print the table."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    numeric = [k for k in columns if k not in keep and k != "round"
               and all(isinstance(r.get(k, 0.0), (int, float)) for r in rows)]
    rows.append({"round": "median", **keep, **{k: median([r[k] for r in rows if k in r]) for k in numeric}})
    print(write_results(name, rows, columns, notes, run).read_text())
    return 0


def _fmt(v) -> str:
    """Three significant digits in fixed notation (a table reader should not decode 1.1e+03)."""
    if not isinstance(v, float) or not math.isfinite(v) or v == 0:
        return str(v)
    return f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}"
