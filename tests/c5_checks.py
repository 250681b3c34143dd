"""The prose's checks of the c5-* acceptance cases (session 15, round 2): what rake-submit's
options and environment change. Called by tests/test_acceptance.py after the front matter."""

from __future__ import annotations

import re
from pathlib import Path

from tests.procs import processes_running, wait_until


def intervals(out: bytes) -> dict[bytes, list[int]]:
    """name -> [start ns, end ns] from the `S <ns> name` / `E <ns> name` lines the actions print."""
    seen: dict[bytes, list[int]] = {}
    for kind, ns, name in re.findall(rb"^([SE]) (\d+) (\w+)$", out, re.M):
        seen.setdefault(name, [0, 0])[kind == b"E"] = int(ns)
    return seen


def most_at_once(out: bytes) -> int:
    """The largest number of actions whose [start, end] intervals overlap at one instant."""
    events = sorted((t, +1 if i == 0 else -1) for s, e in intervals(out).values() for i, t in enumerate((s, e)))
    running = peak = 0
    for _, step in events:   # at a tie the end (-1) sorts first: touching intervals do not overlap
        running += step
        peak = max(peak, running)
    return peak


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)[2:]


def c5_checks(name: str, out: bytes, err: bytes, work: Path) -> None:
    if name == "c5-03-jobs-one-serialises-local-and-remote":
        assert len(intervals(out)) == 6 and most_at_once(out) == 1, out
    if name == "c5-04-jobs-two-caps-mixed-actions":
        assert len(intervals(out)) == 11 and most_at_once(out) <= 2, out
    if name == "c5-06-timeout-kills-remote-tree-not-local-actions":
        # the worker kills the tree before it answers; the poll only absorbs /proc's lag
        assert wait_until(lambda: not processes_running("sleep 7.506"), 5), processes_running("sleep 7.506")
    if name == "c5-07-joblog-after-directory-change":
        check_joblog(work / "sub" / "inner")
    if name == "c5-24-joblog-columns-for-signals-timeouts-and-big-exit-codes":
        rows = {r[0]: r for r in (line.split("\t") for line in (work / "jobs.tsv").read_text().splitlines()[1:])}
        want = {"1": (":", "0", "0", "-1", "9"), "2": ("w", "0", "0", "-1", "15"), "3": ("w", "0", "0", "-1", "0"),
                "4": (":", "0", "0", "44", "0"), "5": ("w", "11", "11", "0", "0"), "6": (":", "0", "0", "0", "0")}
        assert {k: (r[1][:1], *r[4:8]) for k, r in rows.items()} == want, rows
    if name == "c5-25-keep-going-runs-every-queued-remote-sibling":
        assert all((work / f"r{i}.txt").is_file() for i in range(1, 13)), sorted(p.name for p in work.iterdir())
        assert all((work / f"l{i}.txt").is_file() for i in range(1, 5)), sorted(p.name for p in work.iterdir())
    if name in ("c5-29-force-color-with-quiet-colours-failed-only", "c5-33-empty-no-color-does-not-stop-force-color"):
        assert b"\x1b" not in out, out
    if name == "c5-30-timeout-on-embedded-cluster-kills-the-tree":
        assert wait_until(lambda: not processes_running("sleep 7.530"), 5), processes_running("sleep 7.530")
    if name == "c5-12-force-color-on-a-pipe-colours-rake-lines-only":
        assert b"\x1b" not in out and {b"plain-err", b"r-err"} <= set(err.split(b"\n")), (out, err)
    if name == "c5-14-color-always-beats-no-color-still-no-status-line":
        assert b"\x1b" not in out, out
    if name == "c5-16-umask-077-private-outputs-local-and-remote":
        assert [mode(work / d) for d in ("rd", "rd/sub", "ld", "ld/sub")] == ["700"] * 4
    if name == "c5-17-umask-002-group-writable-outputs":
        assert mode(work / "rd") == "775"
    if name == "c5-18-unterminated-output-stdout-untouched-rake-lines-start-fresh":
        assert out == b"local-Aremote-Bremote-E", out
    if name == "c5-19-long-lines-of-failed-actions-shown-whole":
        for big in (b"R", b"L"):
            assert re.search(rb"(?<!%s)%s{2097152}(?!%s)" % (big, big, big), out), f"{big!r} run cut"
        for small, code in ((b"r", b"5"), (b"l", b"6")):
            at = err.index(b"FAILED: [code=" + code + b"]")
            block = err[err.index(b"\n", at) + 1:]
            assert block.startswith(small * 1048576 + b"\n"), block[1048570:1048600]


def check_joblog(where: Path) -> None:
    rows = [line.split("\t") for line in (where / "jobs.tsv").read_text().splitlines()]
    assert rows[0] == "Seq Host Starttime JobRuntime Send Receive Exitval Signal Command".split(), rows[0]
    by_seq = {r[0]: r for r in rows[1:]}
    assert sorted(by_seq) == ["1", "2", "3"] and len(rows) == 4, rows
    for r in rows[1:]:
        assert len(r) == 9 and re.fullmatch(r"\d+\.\d{3}", r[2]) and re.fullmatch(r"\d+\.\d{3}", r[3]), r
    assert by_seq["1"][1] == ":" and by_seq["1"][6:8] == ["0", "0"], by_seq["1"]
    assert by_seq["2"][1] == "w1" and by_seq["2"][4:8] == ["6", "12", "0", "0"], by_seq["2"]
    assert by_seq["3"][1] == "w1" and by_seq["3"][6:] == ["3", "0", "echo failing with a tab; exit 3"], by_seq["3"]
    assert (where / "where.txt").read_text().rstrip("\n").endswith("/sub/inner")
