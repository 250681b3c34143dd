"""Transfer benchmark: MB/s of a file going up to a worker and back through rake, against a
plain TCP socket copy of the same bytes on the same machine, plus the broker's peak memory.

    python -m bench.transfer [--mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import finish, tool

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


def run(mib: int, rounds: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rake-bench-") as tmp:
        tmp = Path(tmp)
        work = tmp / "w"
        work.mkdir()
        make_file(work / "in.bin", mib)
        (work / "Rakefile").write_text("actionset1:\n\tremote-cp in.bin out.bin\n\t\trequires in.bin\n")
        env = dict(os.environ, RAKE_HEARTBEAT="0.5")
        procs = []
        try:
            for r in range(rounds):
                # A fresh worker cache each round, so the file really travels up every time.
                broker = subprocess.Popen(tool("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "-q"],
                                          stdout=subprocess.PIPE, env=env)
                endpoint = broker.stdout.readline().decode().strip()
                worker = subprocess.Popen(tool("rake-worker") + ["--broker", endpoint, "--name", "w1", "-q",
                                                                   "--workdir", str(tmp / f"scratch{r}")], env=env)
                procs += [broker, worker]
                time.sleep(1.0)
                plain = socket_copy(work / "in.bin", tmp / "plain.bin")
                through = rake_copy(work, endpoint, env)   # one heartbeat for all: a broker refuses others
                moved = 2 * mib
                rows.append({"round": r + 1, "MiB each way": mib, "socket MB/s": moved * MiB / plain / 1e6,
                             "rake MB/s": moved * MiB / through / 1e6, "rake / socket": plain / through,
                             "broker peak MiB": peak_kib(broker.pid) / 1024})
                print(rows[-1], file=sys.stderr)
                for p in (worker, broker):
                    p.terminate()
                    p.wait(timeout=10)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    rows = run(args.mib, args.rounds)
    return finish("transfer", rows, {"MiB each way": args.mib},
                  "rake: sha256 both ends, 1 MiB chunks with 8 MiB of credit, through the broker; "
                  "socket: sendfile() over loopback TCP into a file, up and back.")


if __name__ == "__main__":
    sys.exit(main())
