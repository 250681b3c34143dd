"""Transfer benchmark: MB/s of a file going up to a worker and back through rake, against a
plain TCP socket copy of the same bytes on the same machine, plus the broker's peak memory.

    python -m bench.transfer [--mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import bench_env, finish, parse, start_broker, stop, tool

MiB = 1 << 20


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as fh:
        for i in range(mib):
            fh.write(block[i % 13:] + block[: i % 13])


def socket_copy(src: Path, dst: Path) -> float:
    """Seconds to send the file over loopback TCP and write it, up and back (two copies)."""
    def one_way(a: Path, b: Path) -> None:
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def receive() -> None:
            conn, _ = server.accept()
            with conn, b.open("wb") as out:
                while data := conn.recv(MiB):
                    out.write(data)
        t = threading.Thread(target=receive)
        t.start()
        with socket.create_connection(("127.0.0.1", port)) as c, a.open("rb") as fh:
            c.sendfile(fh)
        t.join()
        server.close()
    start = time.perf_counter()
    tmp = dst.with_suffix(".mid")
    one_way(src, tmp)
    one_way(tmp, dst)
    elapsed = time.perf_counter() - start
    tmp.unlink()
    return elapsed


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def same(copy: Path, source_digest: str, what: str) -> None:
    """A copy counts only if it has the source's bytes."""
    if not copy.exists() or sha256(copy) != source_digest:
        raise RuntimeError(f"{what}: {copy.name} differs from in.bin")


def rake_copy(work: Path, endpoint: str, env: dict) -> float:
    (work / "out.bin").unlink(missing_ok=True)
    start = time.perf_counter()
    res = subprocess.run(tool("rake-submit") + ["--broker", endpoint], cwd=work, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if res.returncode:
        raise RuntimeError(res.stderr.decode(errors="replace")[-2000:])
    return elapsed


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def start(tmp: Path, r: int, env: dict, procs: list[subprocess.Popen]) -> tuple[subprocess.Popen, str]:
    """A broker and a worker with a fresh cache (so the file really travels up every round)."""
    broker, endpoint = start_broker(env, procs)
    procs.append(subprocess.Popen(tool("rake-worker") + ["--broker", endpoint, "--name", "w1", "-q",
                                                         "--workdir", str(tmp / f"scratch{r}")], env=env))
    time.sleep(1.0)   # the worker joins
    return broker, endpoint


def run(mib: int, rounds: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        tmp = Path(tmp)
        work = tmp / "w"
        work.mkdir()
        make_file(work / "in.bin", mib)
        digest = sha256(work / "in.bin")
        (work / "Rakefile").write_text("actionset1:\n\tremote-cp in.bin out.bin\n\t\trequires in.bin\n")
        env = bench_env(RAKE_HEARTBEAT="0.5")   # one heartbeat for all: a broker refuses others
        for r in range(rounds):
            procs: list[subprocess.Popen] = []
            try:
                broker, endpoint = start(tmp, r, env, procs)
                times = {}
                # Alternate which goes first, so neither always runs on a warmer page cache.
                for name in ("socket", "rake") if r % 2 == 0 else ("rake", "socket"):
                    if name == "socket":
                        times[name] = socket_copy(work / "in.bin", tmp / "plain.bin")
                        same(tmp / "plain.bin", digest, "socket copy")
                    else:
                        times[name] = rake_copy(work, endpoint, env)
                        same(work / "out.bin", digest, "rake")
                moved = 2 * mib * MiB / 1e6
                rows.append({"round": r + 1, "MiB each way": mib, "socket MB/s": moved / times["socket"],
                             "rake MB/s": moved / times["rake"], "rake / socket": times["socket"] / times["rake"],
                             "broker peak MiB": peak_kib(broker.pid) / 1024})
                print(rows[-1], file=sys.stderr)
            finally:
                stop(procs)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    args = parse(p, ("mib", "rounds"))
    rows = run(args.mib, args.rounds)
    return finish("transfer", rows, {"MiB each way": args.mib},
                  "rake: `remote-cp in.bin out.bin` through the broker (1 MiB chunks with 8 MiB of credit), a "
                  "fresh worker cache each round; socket: sendfile() over loopback TCP into a file, up and back. "
                  "Which goes first alternates by round. The benchmark compares each copy's sha256 with the "
                  "source's.", args.run)


if __name__ == "__main__":
    sys.exit(main())
