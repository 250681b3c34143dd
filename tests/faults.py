"""The fault suite: real processes, and a seeded schedule of the faults SPEC section 6 promises
to survive: kill -9 and SIGSTOP of workers, broker restarts, submitter kills, cut links.

Actions write their own ledger (start and end lines), so the checks do not rely on what the
programs say about themselves. Run by tests/test_faults.py, or larger by hand:

    python -m tests.faults --rounds 60 --seed 7
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.netns import Hosts, netns_available
from tests.procs import Processes, command, free_port, processes_with_env, rake_env, wait_until

FAULTS = ("kill_worker", "freeze_worker", "restart_broker", "kill_submitter", "cut_link")
WORKERS = 3
WINDOW = 0.6 + 0.2          # liveness (3 x 0.2 s heartbeats) plus one interval


@dataclass
class Tally:
    injected: int = 0
    survived: int = 0
    lost: int = 0
    duplicates: int = 0
    orphans: int = 0

    def line(self) -> str:
        return (f"faults: {self.injected} injected, {self.survived} survived, {self.lost} results lost, "
                f"{self.duplicates} duplicate deliveries, {self.orphans} orphans")


class FaultCluster:
    """A broker and workers, each in its own network namespace where allowed, else on loopback."""

    def __init__(self, tmp: Path, procs: Processes, netns: bool):
        self.tmp, self.procs = tmp, procs
        self.hosts = Hosts(f"rf{os.getpid() % 100000}") if netns else None
        self.ns: dict[str, list[str]] = {}
        if self.hosts:
            for i, role in enumerate(["b", *(f"w{n}" for n in range(1, WORKERS + 1)), "s"]):
                ns, addr = self.hosts.host(role, i + 1)
                self.ns[role] = ["ip", "netns", "exec", ns]
                if role == "b":
                    self.endpoint = f"tcp://{addr}:6238"
        else:
            self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.workers: dict[int, subprocess.Popen] = {}
        self.start_broker()
        for n in range(1, WORKERS + 1):
            self.start_worker(n)

    def _in(self, role: str) -> list[str]:
        return self.ns.get(role, [])

    def start_broker(self) -> None:
        # The namespaces' bridge is private to this test: no keys needed, hence --insecure.
        self.broker = self.procs.start(self._in("b") + command("rake-broker") + ["--bind", self.endpoint, "--insecure"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.broker.stdout.readline()

    def start_worker(self, n: int) -> None:
        self.workers[n] = self.procs.start(
            self._in(f"w{n}") + command("rake-worker") + [
                "--broker", self.endpoint, "--name", f"fw{n}", "--slots", "2",
                "--workdir", str(self.tmp / f"scratch{n}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def submit(self, work: Path) -> subprocess.Popen:
        return self.procs.start(self._in("s") + command("rake-submit") + ["--broker", self.endpoint],
                                cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def close(self) -> None:
        self.procs.stop()
        if self.hosts:
            self.hosts.close()


def inject(cluster: FaultCluster, fault: str, rng: random.Random, sub: subprocess.Popen) -> None:
    """Break one thing, and mend it after a while (the run must ride it out)."""
    n = rng.randint(1, WORKERS)
    pause = rng.uniform(0.5, 1.5)
    if fault == "kill_worker":
        cluster.workers[n].send_signal(signal.SIGKILL)
        cluster.workers[n].wait()
        time.sleep(pause)
        cluster.start_worker(n)
    elif fault == "freeze_worker":
        cluster.workers[n].send_signal(signal.SIGSTOP)
        time.sleep(pause + WINDOW)
        cluster.workers[n].send_signal(signal.SIGCONT)
    elif fault == "restart_broker":
        cluster.broker.send_signal(signal.SIGKILL)
        cluster.broker.wait()
        time.sleep(pause)
        cluster.start_broker()
    elif fault == "kill_submitter":
        sub.send_signal(signal.SIGKILL)
    elif fault == "cut_link":
        cluster.hosts.link(n + 1, up=False)
        time.sleep(pause + WINDOW)
        cluster.hosts.link(n + 1, up=True)


def run_round(cluster: FaultCluster, rng: random.Random, number: int, tally: Tally,
              only: tuple[str, ...] = FAULTS) -> None:
    faults = [f for f in only if cluster.hosts or f != "cut_link"]
    fault = rng.choice(faults)
    work = cluster.tmp / f"round{number}"
    work.mkdir()
    ledger = work.parent / f"ledger{number}"
    ids = [f"{number}-{i}" for i in range(rng.randint(4, 8))]
    body = "".join(f"\tremote-echo S {a} $RAKE_WORKER $RAKE_JOB >> {ledger}; sleep 0.{rng.randint(3, 9)}; "
                   f"echo E {a} >> {ledger}; echo out-{a}\n" for a in ids)
    (work / "Rakefile").write_text("actionset1:\n" + body)
    sub = cluster.submit(work)
    wait_until(lambda: ledger.exists(), 15)
    time.sleep(rng.uniform(0.0, 0.3))
    tally.injected += 1
    inject(cluster, fault, rng, sub)
    ok = check_round(sub, fault, ids, ledger, tally)
    leftovers = _orphans()
    if leftovers:
        print(ledger.read_text()[-3000:], file=sys.stderr)
    tally.orphans += len(leftovers)
    tally.survived += ok and not leftovers
    print(f"round {number}: {fault}: {'survived' if ok and not leftovers else 'FAILED'}", file=sys.stderr)


def check_round(sub: subprocess.Popen, fault: str, ids: list[str], ledger: Path, tally: Tally) -> bool:
    try:
        out, err = sub.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        sub.kill()
        out, err = sub.communicate()
        tally.lost += len(ids)
        print(f"  hung; stderr: {err[-800:]!r}", file=sys.stderr)
        return False
    if fault == "kill_submitter":
        return sub.returncode == -signal.SIGKILL
    delivered = Counter(line[4:] for line in out.decode().split() if line.startswith("out-"))
    lost = [a for a in ids if delivered[a] == 0]
    dup = [a for a in ids if delivered[a] > 1]
    ends = Counter(line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("E "))
    # A frozen or cut-off worker's action runs on and ends; its retry ends too: by design.
    rerun_ok = fault in ("freeze_worker", "cut_link")
    twice = [a for a in ids if ends[a] > 1 and not rerun_ok]
    tally.lost += len(lost)
    tally.duplicates += len(dup)
    if sub.returncode or lost or dup or twice:
        print(f"  exit {sub.returncode} lost {lost} dup {dup} ran-twice {twice}; stderr: {err[-800:]!r}",
              file=sys.stderr)
    return not (sub.returncode or lost or dup or twice)


def _orphans() -> list[int]:
    """Action processes still alive once things have settled (a thawed worker may still run some)."""
    names = [f"RAKE_WORKER=fw{n}" for n in range(1, WORKERS + 1)]
    alive = lambda: [p for name in names for p in processes_with_env(name)]  # noqa: E731
    # Settled means none for two looks half a second apart: a worker thawed a moment ago may
    # still be starting one it held (it is told to drop them as it rejoins).
    settled = lambda: not alive() and (time.sleep(0.5) or not alive())  # noqa: E731
    wait_until(settled, 10)
    left = alive()
    for pid in left:
        print(f"  orphan {pid}: {_describe(pid)}", file=sys.stderr)
    return left


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[-1].split()
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return f"state {fields[0]} ppid {fields[1]} age {age:.1f}s children {kids}: {cmd[:160]}"
    except OSError as e:
        return f"gone ({e.strerror})"


def run_suite(rounds: int, seed: int, tmp: Path, only: tuple[str, ...] = FAULTS) -> Tally:
    os.environ.update(rake_env())   # fast heartbeats for every process started
    rng, tally, procs = random.Random(seed), Tally(), Processes()
    cluster = FaultCluster(tmp, procs, netns=netns_available() is None)
    try:
        time.sleep(1.0)
        for number in range(rounds):
            run_round(cluster, rng, number, tally, only)
    finally:
        cluster.close()
    return tally


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", nargs="+", choices=FAULTS, default=FAULTS, help="inject only these faults")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rake-faults-") as tmp:
        tally = run_suite(args.rounds, args.seed, Path(tmp), tuple(args.only))
    print(tally.line())
    return 0 if tally.survived == tally.injected and not (tally.lost or tally.duplicates or tally.orphans) else 1


if __name__ == "__main__":
    sys.exit(main())
