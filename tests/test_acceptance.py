"""Every case in ../shared/acceptance, run with real processes as its README says."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.c5_checks import c5_checks
from tests.procs import command, rake_env, submit

ROOT = Path(os.environ.get("RAKE_ACCEPTANCE_DIR",
                           Path(__file__).resolve().parents[2] / "shared" / "acceptance"))
MORE = Path(__file__).resolve().parent / "acceptance_more"   # ours, in the same format
CASES = sorted(p.parent for p in ROOT.rglob("Rakefile")) if ROOT.is_dir() else []
# a case is a folder holding both (a c5-* case may keep the Rakefile it runs deeper down)
MORE_CASES = sorted(p.parent for p in MORE.rglob("Rakefile") if (p.parent / "EXPECTED.md").is_file())


def front_matter(case: Path) -> dict:
    text = (case / "EXPECTED.md").read_text()
    _, head, _ = text.split("---", 2)
    return yaml.safe_load(head)


def copy_case(case: Path, work: Path) -> None:
    shutil.copytree(case, work)
    for p in [work, *work.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)  # the corpus is read-only


def check_file(path: Path, want: str, work: Path) -> None:
    assert path.is_file(), f"{path.name} missing"
    if want == "executable":
        assert os.access(path, os.X_OK), f"{path.name} is not executable"
    elif want.startswith("sha256:"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == want[7:], f"{path.name} differs"
    elif want.startswith("same-as:"):
        assert path.read_bytes() == (work / want[8:]).read_bytes(), f"{path.name} differs"
    elif want.startswith("mode:"):   # ours (tests/acceptance_more): the permission bits, in octal
        assert oct(path.stat().st_mode & 0o7777)[2:] == want[5:].lstrip("0"), f"{path.name} mode {path.stat().st_mode:o}"
    elif want.startswith("content:"):   # ours: exactly this text
        assert path.read_bytes() == want[8:].encode(), f"{path.name} holds {path.read_bytes()[:200]!r}"
    else:
        assert want == "exists", f"unknown check {want!r}"


def as_bytes(items) -> list[bytes]:
    return [s.encode() if isinstance(s, str) else bytes(s) for s in items or []]


# The prose's "Also check" notes for the sample cases, where they can be checked.
def extra_checks(name: str, out: bytes, err: bytes, work: Path) -> None:
    if name == "01-classic-build":
        for obj in ("main.o", "twice.o", "thrice.o"):
            assert (work / obj).read_bytes()[:4] == b"\x7fELF"
        assert out.index(b"begin-compile") < out.index(b"total=29")
    if name == "03-fail-halts-next-actionset":
        assert b"FAILED: [code=1] cc -c broken.c" in err
    if name == "10-binary-and-odd-names":
        assert bytes(range(255, -1, -1)) in out
    if name == "02-local-remote-mix":
        assert out.index(b"3 words.txt") < out.index(b"gamma\nbeta\nalpha\n") < out.index(b"local-ok")
    more_checks(name, out)
    c4_checks(name, out, err, work)
    c5_checks(name, out, err, work)


def c4_checks(name: str, out: bytes, err: bytes, work: Path) -> None:
    """The prose's checks of the c4-* cases (session 15), which need both streams."""
    if name == "c4-14-big-stdout-and-stderr-at-once-remote":
        assert out.count(b"R\n") == 4_000_000 and err.count(b"E\n") == 2_000_000, (len(out), len(err))
        assert b"\n" + b"x" * 3_000_000 + b"\n" in out
    if name == "c4-15-big-local-stdout-grouped-with-remote":
        runs = [(k, len(list(g))) for k, g in itertools.groupby(out.split(b"\n")[:-1])]
        assert sorted(runs) == sorted([(b"L", 3_000_000), (b"L-END", 1), (b"Q", 2000), (b"Q-END", 1),
                                       (b"M", 2000), (b"M-END", 1)]), runs[:12]
        for k in (b"L", b"Q", b"M"):   # each block is followed by its own end line
            assert runs[runs.index((k, dict(runs)[k])) + 1] == (k + b"-END", 1), runs
    if name == "c4-16-binary-stderr-and-unterminated-stdout":
        for who in (b"R", b"L"):
            assert who + b":\0\x80\xff\xc3(\r|" in err, err
        assert out.index(b"second-set\n") > max(out.index(b"r-no-newline"), out.index(b"l-no-newline"))
    if name == "c4-28-stderr-follows-actionset-order":
        assert max(err.index(b"err-set1-remote"), err.index(b"err-set1-local")) < err.index(b"err-set2-local") \
            < err.index(b"err-set3-remote"), err
    if name == "c4-36-stderr-of-concurrent-actions-grouped":
        for k in b"ABCD":
            want = b"".join(b"%c-%d\n" % (k, i) for i in range(1, 301))
            assert want in err, f"{chr(k)} lines broken up"
    if name == "c4-40-random-binary-stdout-local-and-remote":
        data = (work / "rnd.bin").read_bytes()
        assert out == data + data, (len(out), len(data))
    if name == "c4-45-forty-concurrent-megabyte-outputs":
        assert sorted(out.splitlines()) == sorted((work / "local.sum").read_bytes().splitlines()), out[:300]
    if name == "c4-41-embedded-cluster-binary-stdout-and-output":
        assert out == (work / "rnd.bin").read_bytes(), len(out)


def more_checks(name: str, out: bytes) -> None:
    """The prose's checks of our own cases (tests/acceptance_more/c3-*)."""
    if name == "c3-17-thirty-actions-share-5mib-input":
        want = re.search(rb"want=(\w+)", out).group(1)
        got = re.findall(rb"h\d\d=(\w+)", out)
        assert len(got) == 30 and set(got) == {want}, f"hashes {got} want {want}"
    if name == "c3-23-raw-bytes-local-and-remote-output":
        assert b"L:10%\r20%\r100%\n\0\xffL-end\n" in out and b"R:10%\r20%\r100%\n\0\xffR-end\n" in out, out[-300:]
    if name == "c3-34-big-outputs-stay-grouped":   # four blocks of 40000 lines, never interleaved
        runs = [len(list(g)) for _, g in itertools.groupby(line[:1] for line in out.split(b"\n")[:-1])]
        assert runs == [40000] * 4, runs[:10]
    if name == "c3-35-256mib-sparse-input":
        remote = re.search(rb"^([0-9a-f]{64})  big.img$", out, re.M).group(1)
        assert re.search(rb"^local ([0-9a-f]{64})  big.img$", out, re.M).group(1) == remote
    if name == "c3-37-two-hundred-actionsets":
        assert out.split(b"\n")[:-1] == [b"s%03d" % i for i in range(1, 201)], out[:200]


@pytest.mark.skipif(not CASES, reason=f"no acceptance corpus at {ROOT}")
@pytest.mark.parametrize("case", CASES, ids=[str(c.relative_to(ROOT)) for c in CASES])
@pytest.mark.timeout(180)
def test_acceptance_case(case: Path, tmp_path: Path, procs) -> None:
    run_case(case, tmp_path, procs)


@pytest.mark.parametrize("case", MORE_CASES, ids=[str(c.relative_to(MORE)) for c in MORE_CASES])
@pytest.mark.timeout(180)
def test_more_acceptance_case(case: Path, tmp_path: Path, procs) -> None:
    run_case(case, tmp_path, procs)


def test_more_acceptance_cases_are_found():
    assert len(MORE_CASES) >= 100


def run_case(case: Path, tmp_path: Path, procs) -> None:
    """One case as the corpus README says: its brokers and workers, rake-submit, the checks."""
    spec = front_matter(case)
    work = tmp_path / "W"
    copy_case(case, work)
    ports = spec.get("brokers_and_workers") or []
    if ports:
        _, endpoint = procs.broker(f"tcp://127.0.0.1:{ports[0]}")
        for i, _ in enumerate(ports):
            procs.worker(endpoint, f"w{i + 1}", tmp_path / f"scratch{i + 1}", slots=2)
    res = run_submit(spec, work)
    out, err = res.stdout, res.stderr
    context = f"exit {res.returncode}\nstdout: {out[-2000:]!r}\nstderr: {err[-2000:]!r}"
    if spec["exit"] == 0:
        assert res.returncode == 0, context
    else:
        assert 1 <= res.returncode <= 255, context
    if "exit_status" in spec:   # ours: the exact status SPEC section 3 prescribes
        assert res.returncode == spec["exit_status"], context
    for rel, want in (spec.get("files_present") or {}).items():
        check_file(work / rel, want, work)
    for rel in spec.get("files_absent") or []:
        assert not (work / rel).exists(), f"{rel} should not exist\n{context}"
    for s in as_bytes(spec.get("stdout_contains")):
        assert s in out, f"stdout lacks {s!r}\n{context}"
    for s in as_bytes(spec.get("stderr_contains")):
        assert s in err, f"stderr lacks {s!r}\n{context}"
    for s in as_bytes(spec.get("stdout_or_stderr_contains")):
        assert s in out or s in err, f"output lacks {s!r}\n{context}"
    for s in as_bytes(spec.get("output_not_contains")) + [b"Traceback"]:
        assert s not in out and s not in err, f"output has {s!r}\n{context}"
    for s in as_bytes(spec.get("stderr_not_contains")):   # ours
        assert s not in err, f"stderr has {s!r}\n{context}"
    at = 0
    for s in as_bytes(spec.get("stdout_in_order")):   # ours: each after the one before
        assert out.find(s, at) >= 0, f"stdout lacks {s!r} after byte {at}\n{context}"
        at = out.find(s, at) + len(s)
    extra_checks(case.name, out, err, work)


def run_submit(spec: dict, work: Path) -> subprocess.CompletedProcess:
    """rake-submit with no arguments, as the README says; our c5-* cases may add `args` (a list),
    `env` (a map), `stdin` (text fed to it instead of /dev/null) and `umask` (octal text)."""
    if not {"args", "env", "stdin", "umask"} & spec.keys():
        return submit([], cwd=work, timeout=spec["max_seconds"])
    feed = {"input": spec["stdin"].encode()} if "stdin" in spec else {"stdin": subprocess.DEVNULL}
    return subprocess.run(command("rake-submit") + [str(a) for a in spec.get("args") or []], cwd=work,
                          env=rake_env(**{k: str(v) for k, v in (spec.get("env") or {}).items()}),
                          capture_output=True, timeout=spec["max_seconds"],
                          umask=int(spec["umask"], 8) if "umask" in spec else -1, **feed)
