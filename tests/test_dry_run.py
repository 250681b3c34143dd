"""-n/--dry-run prints the plan, runs nothing and contacts no broker."""

from __future__ import annotations

import socket

import pytest

from tests.procs import submit

RAKEFILE = (
    "HOSTS = 127.0.0.1:{port}\n"
    "actionset1:\n"
    "\ttouch local-ran\n"
    "\tremote-cc -c big.c\n"
    "\t\trequires big.c small.h\n"
    "actionset2:\n"
    "\tremote-touch remote-ran\n"
    "\t\trequires gone.h small.h\n"
)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["HOSTS", "--broker"])
def test_dry_run_prints_every_action_and_its_files_and_opens_no_connection(tmp_path, how):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        (tmp_path / "Rakefile").write_text(RAKEFILE.format(port=port))
        (tmp_path / "big.c").write_bytes(b"x" * 3000)
        (tmp_path / "small.h").write_bytes(b"y" * 12)
        args = ["-n"] + (["--broker", f"tcp://127.0.0.1:{port}"] if how == "--broker" else [])
        res = submit(args, cwd=tmp_path)
        with pytest.raises(BlockingIOError):
            listener.accept()          # nobody connected, not even for a moment
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    assert lines == [
        f"dry run: remote actions would go through tcp://127.0.0.1:{port} (from {'HOSTS, line 1' if how == 'HOSTS' else '--broker'}), not contacted",
        "actionset1: (line 2, 2 actions, concurrent)",
        "  [local ] touch local-ran    (line 3)",
        "  [remote] cc -c big.c    (line 4)",
        "      requires big.c (3000 B, 2.9 KiB)",
        "      requires small.h (12 B)",
        "      ships 2 files, 2.9 KiB",
        "actionset2: (line 6, 1 action, concurrent)",
        "  [remote] touch remote-ran    (line 7)",
        "      requires gone.h (missing now)",
        "      requires small.h (12 B)",
        "      ships 2 files, 12 B (1 missing now)",
    ]
    assert not (tmp_path / "local-ran").exists() and not (tmp_path / "remote-ran").exists()


@pytest.mark.timeout(30)
def test_dry_run_says_which_requires_a_real_run_would_refuse(tmp_path):
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-cat adir a.h\n\t\trequires adir a.h\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "a.h").write_bytes(b"y" * 5)
    res = submit(["-n"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    assert "      requires adir (would be refused: it is not a regular file)" in lines
    assert "      ships 2 files, 5 B" in lines


@pytest.mark.timeout(30)
def test_dry_run_shows_a_name_holding_control_characters_escaped(tmp_path):
    name = "a\x1b[31mred\tname.h"
    (tmp_path / name).write_bytes(b"z")
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-cat x\n\t\trequires 'a\x1b[31mred\tname.h'\n")
    res = submit(["-n"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert b"\x1b" not in res.stdout and b"\t" not in res.stdout
    assert "requires 'a\\x1b[31mred\\tname.h' (1 B)" in res.stdout.decode()


@pytest.mark.timeout(30)
def test_dry_run_quotes_a_required_name_with_a_blank_as_a_requires_line_would(tmp_path):
    (tmp_path / "two words.c").write_bytes(b"z")
    (tmp_path / "Rakefile").write_text("actionset1:\n\tremote-cat x\n\t\trequires 'two words.c'\n")
    res = submit(["-n"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "      requires 'two words.c' (1 B)" in res.stdout.decode().splitlines()


@pytest.mark.timeout(30)
def test_a_rakefile_of_sixty_errors_shows_the_first_fifty_and_how_many_more(tmp_path):
    (tmp_path / "Rakefile").write_text("actionset1:\n" + "".join(f"bogus{i}\n" for i in range(1, 61)))
    res = submit(["-n"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 51 and lines[0] == 'Rakefile:2: unknown directive "bogus1"', lines[:2]
    assert lines[-1] == "Rakefile: ... and 10 more errors"


@pytest.mark.timeout(30)
def test_a_make_target_given_as_the_rakefile_says_rake_has_no_targets(tmp_path):
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttouch ran\n")
    res = submit(["test"], cwd=tmp_path)
    assert res.returncode == 2 and not (tmp_path / "ran").exists()
    assert res.stderr.decode().splitlines() == [
        "rake: error: cannot read test: No such file or directory (rake has no targets: RAKEFILE names the file to run)"]
    res = submit(["-f", "build.rake"], cwd=tmp_path)   # a file named with -f is no target
    assert res.stderr.decode().splitlines() == ["rake: error: cannot read build.rake: No such file or directory"]
