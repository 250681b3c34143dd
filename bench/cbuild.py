"""C build benchmark: a generated multi-file C project built with rake on the embedded local
cluster, against `make -jP` on the same tree, clean each round; P is the CPUs this process
may run on (the embedded cluster's slots) unless --jobs says otherwise.

    python -m bench.cbuild [--units 32] [--rounds 3] [--funcs 12] [--jobs P]

The project is N translation units of generated arithmetic functions (a fraction of a second
each at -O2) that all include common.h, a main.c calling every unit, and a link step. Both
builds must produce a program that runs and prints the same checksum.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (bench_env, jobs_flag, median, parse, program_version, require, slots, tool,
                          write_results)
from rake_common.config import usable_cpus

CC = os.environ.get("CC", "cc")
TARGET = 1.15   # the issue's target for rake / make


def unit_source(i: int, funcs: int) -> str:
    """One translation unit: `funcs` static functions of small constant-bound loops, and an entry."""
    out = ['#include "common.h"', ""]
    for f in range(funcs):
        out.append(f"static unsigned u{i}_f{f}(unsigned x, unsigned y)")
        out.append("{")
        out.append(f"    unsigned a = x ^ {(i * 131 + f * 17) % 997}u, b = y + {f + 1}u;")
        for k in range(10):
            out.append(f"    for (unsigned k = 0; k < {3 + k}u; k++) {{")
            out.append(f"        a = a * {2 * k + 3}u + (b >> {k % 7 + 1});")
            out.append(f"        b ^= MIX(a, {k + i + f}u);")
            out.append("    }")
        out.append("    return a + b;")
        out.append("}")
        out.append("")
    out.append(f"unsigned unit{i}(unsigned seed)")
    out.append("{")
    out.append("    unsigned s = seed;")
    for f in range(funcs):
        out.append(f"    s = u{i}_f{f}(s, {f}u);")
    out.append("    return s;")
    out.append("}")
    return "\n".join(out) + "\n"


def generate(src: Path, units: int, funcs: int) -> list[str]:
    """Write the project into `src`: common.h, uN.c, main.c, Makefile, Rakefile. Returns the .c names."""
    src.mkdir(parents=True, exist_ok=True)
    names = [f"u{i}" for i in range(units)]
    decls = "".join(f"unsigned unit{i}(unsigned seed);\n" for i in range(units))
    (src / "common.h").write_text("#ifndef COMMON_H\n#define COMMON_H\n"
                                  "#define MIX(a, c) (((a) << 5) ^ ((a) >> 3) ^ (c))\n"
                                  f"{decls}#endif\n")
    for i, name in enumerate(names):
        (src / f"{name}.c").write_text(unit_source(i, funcs))
    calls = "".join(f"    s = unit{i}(s);\n" for i in range(units))
    (src / "main.c").write_text('#include <stdio.h>\n#include "common.h"\n\nint main(void)\n{\n'
                                f"    unsigned s = 1u;\n{calls}"
                                '    printf("checksum %u\\n", s);\n    return 0;\n}\n')
    sources = ["main"] + names
    objects = " ".join(f"{n}.o" for n in sources)
    (src / "Makefile").write_text(f"prog: {objects}\n\t{CC} -o prog {objects}\n\n"
                                  f"%.o: %.c common.h\n\t{CC} -O2 -c $<\n")
    lines = ["actionset1:"]
    for n in sources:
        lines += [f"\tremote-{CC} -O2 -c {n}.c", f"\t\trequires {n}.c common.h"]
    lines += ["", "actionset2:", f"\tremote-{CC} -o prog *.o", f"\t\trequires {objects}", ""]
    (src / "Rakefile").write_text("\n".join(lines))
    return sources


def clean(tree: Path) -> None:
    for p in tree.iterdir():
        if p.suffix == ".o" or p.name == "prog":
            p.unlink()


def checksum(tree: Path) -> str:
    res = subprocess.run([str(tree / "prog")], capture_output=True, text=True, timeout=30)
    if res.returncode or not res.stdout.startswith("checksum "):
        raise RuntimeError(f"{tree}/prog did not run: status {res.returncode}, {res.stdout!r} {res.stderr!r}")
    return res.stdout.strip()


def timed(cmd: list[str], cwd: Path, env: dict, what: str) -> float:
    """Seconds for `cmd` in `cwd`; the process is killed by pid if anything goes wrong."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{what} failed with status {proc.returncode}:\n"
                           f"{(out + err).decode(errors='replace')[-2000:]}")
    return elapsed


def run(units: int, funcs: int, rounds: int, jobs: int) -> list[dict]:
    rows = []
    # No broker configured anywhere, so rake-submit starts its embedded local cluster.
    env = bench_env()
    with tempfile.TemporaryDirectory(prefix="rake-bench-cbuild-") as tmp:
        tmp = Path(tmp)
        generate(tmp / "src", units, funcs)
        for name in ("make", "rake"):
            shutil.copytree(tmp / "src", tmp / name)
        make_tree, rake_tree = tmp / "make", tmp / "rake"
        # Warm the page cache and the compiler once, outside the timed rounds.
        subprocess.run([CC, "-O2", "-c", "u0.c", "-o", str(tmp / "warm.o")], cwd=tmp / "src", check=True)
        for r in range(rounds):
            # Alternate which one goes first, so neither always runs on a warmer machine.
            order = ("make", "rake") if r % 2 == 0 else ("rake", "make")
            times = {}
            for name in order:
                if name == "make":
                    clean(make_tree)
                    times[name] = timed(["make", f"-j{jobs}", "-s"], make_tree, env, "make")
                else:
                    clean(rake_tree)
                    times[name] = timed(tool("rake-submit") + ["-q", *jobs_flag(jobs)], rake_tree, env, "rake-submit")
            made, raked = checksum(make_tree), checksum(rake_tree)
            if made != raked:
                raise RuntimeError(f"the two programs disagree: make {made!r}, rake {raked!r}")
            rows.append({"round": r + 1, "compiles": units + 1, "make -j s": times["make"],
                         "rake s": times["rake"], "rake / make": times["rake"] / times["make"]})
            print(rows[-1], file=sys.stderr)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cbuild", description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=32, help="translation units besides main.c")
    p.add_argument("--funcs", type=int, default=12, help="generated functions per unit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=usable_cpus(),
                   help="make -j and rake-submit -j (default: the CPUs this process may run on)")
    args = parse(p, ("units", "funcs", "rounds", "jobs"))
    require(CC, "make")
    args.run["versions"].update(cc=program_version([CC, "--version"]), make=program_version(["make", "--version"]))
    rows = run(args.units, args.funcs, args.rounds, args.jobs)
    med = median([r["rake / make"] for r in rows])
    rows.append({"round": "median", "compiles": args.units + 1,
                 **{k: median([r[k] for r in rows]) for k in ("make -j s", "rake s", "rake / make")}})
    verdict = "meets" if med <= TARGET else "misses"
    path = write_results(
        "cbuild", rows, list(rows[0]),
        f"{args.units} generated units of {args.funcs} functions plus main.c, `{CC} -O2 -c` each, then one link; "
        f"clean tree each round. make: `make -j{args.jobs}` with a generated Makefile. rake: "
        f"`{' '.join(['rake-submit', *jobs_flag(args.jobs)])}` on the embedded local cluster ({slots()}, "
        f"{args.jobs} at once, fresh worker cache every run), the same commands as "
        f"`remote-` actions in two actionsets; both programs run and print the same checksum. "
        f"Median rake / make {med:.3g}: {verdict} the target of at most {TARGET}.", args.run)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
