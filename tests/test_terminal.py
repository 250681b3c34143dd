"""rake-submit's output on a real pseudo-terminal and through pipes: status line, colour, summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.procs import command, rake_env, submit
from tests.pty_run import run_on_terminal

SGR = re.compile(rb"\x1b\[[0-9;]*m")          # colour codes
LONE_CR = re.compile(rb"\r(?!\n)")              # a carriage return that rewrites a line

RAKEFILE = (
    "actionset1:\n"
    "\techo local-said-hello\n"
    "\tremote-echo remote-one; sleep 0.3; echo remote-two\n"
    "\tremote-echo the-remote-end-of-a-rather-long-command-line-that-will-not-fit-in-forty-columns\n"
    "actionset2:\n"
    "\tremote-sh -c 'echo about-to-fail; exit 3'\n"
)


def workdir(tmp_path: Path, text: str = RAKEFILE) -> Path:
    work = tmp_path / "w"
    work.mkdir()
    (work / "Rakefile").write_text(text)
    return work


def on_terminal(work: Path, *args: str, columns: int = 100, **env: str) -> tuple[int, bytes]:
    environ = rake_env(**{"TERM": "xterm-256color", **env})
    return run_on_terminal(command("rake-submit") + list(args), work, environ, columns=columns)


def status_lines(screen: bytes) -> list[bytes]:
    """Each drawing of the status line: the text between a lone "\\r" and its erase-to-end."""
    return re.findall(rb"\r(\[\d+/\d+\][^\r\n]*?)\x1b\[K", screen)


@pytest.mark.timeout(60)
def test_status_line_is_redrawn_in_place_with_done_and_total(tmp_path):
    status, screen = on_terminal(workdir(tmp_path))
    assert status == 1, screen
    drawn = status_lines(screen)
    assert drawn, screen
    assert all(re.match(rb"\[[0-4]/4\] ", line) for line in drawn), drawn
    assert any(line.startswith(b"[") and b"embedded: echo remote-one" in line for line in drawn), drawn
    assert b"\r\x1b[K" in screen                       # erased before other output is printed
    assert screen.rstrip().endswith(b"\x1b[0m")        # the summary is the last thing drawn


@pytest.mark.timeout(60)
def test_status_line_is_cut_to_the_terminal_width(tmp_path):
    status, screen = on_terminal(workdir(tmp_path), columns=40)
    drawn = status_lines(screen)
    assert drawn and all(len(line) <= 39 for line in drawn), drawn
    assert any(b"..." in line for line in drawn), drawn    # the long command, elided


@pytest.mark.timeout(60)
def test_failure_is_red_and_output_comes_in_whole_blocks_on_a_terminal(tmp_path):
    status, screen = on_terminal(workdir(tmp_path))
    plain = SGR.sub(b"", screen)
    assert b"\x1b[31;1mFAILED:\x1b[0m [code=3] sh -c 'echo about-to-fail; exit 3' (actionset 2, line 6, on embedded)" in screen
    assert b"remote-one\nremote-two\n" in plain           # one block, never split by the status line
    assert b"local-said-hello\n" in plain
    assert re.search(rb"rake: 3 actions ok, 1 failed, 1 worker, [0-9.]+s, sent 0 B, received 0 B", plain), plain


@pytest.mark.timeout(60)
def test_no_color_keeps_the_status_line_but_drops_colour(tmp_path):
    status, screen = on_terminal(workdir(tmp_path), NO_COLOR="1", FORCE_COLOR="1")
    assert status == 1
    assert not SGR.search(screen), screen
    assert status_lines(screen)
    assert b"FAILED: [code=3]" in screen


@pytest.mark.timeout(60)
def test_dumb_terminal_gets_plain_lines_without_escape_codes(tmp_path):
    status, screen = on_terminal(workdir(tmp_path), TERM="dumb")
    assert status == 1
    assert b"\x1b" not in screen and not LONE_CR.search(screen), screen
    assert b"FAILED: [code=3]" in screen and b"rake: 3 actions ok, 1 failed" in screen


@pytest.mark.timeout(60)
def test_color_never_beats_force_color_and_quiet_drops_status_and_summary(tmp_path):
    status, screen = on_terminal(workdir(tmp_path), "--color=never", "-q", FORCE_COLOR="1")
    assert status == 1
    assert b"\x1b" not in screen and not LONE_CR.search(screen), screen
    assert b"FAILED: [code=3]" in screen
    assert b"actions ok" not in screen


@pytest.mark.timeout(60)
def test_piped_output_has_no_status_line_no_carriage_return_and_no_escape(tmp_path):
    res = submit([], cwd=workdir(tmp_path), TERM="xterm-256color")
    assert res.returncode == 1, res.stderr
    for stream in (res.stdout, res.stderr):
        assert b"\x1b" not in stream and b"\r" not in stream, stream
    assert b"remote-one\nremote-two\n" in res.stdout
    last = res.stderr.splitlines()[-1]
    assert re.fullmatch(rb"rake: 3 actions ok, 1 failed, 1 worker, [0-9.]+s, sent 0 B, received 0 B", last), last


@pytest.mark.timeout(60)
def test_force_color_or_color_always_colour_a_pipe_and_no_color_wins_over_force(tmp_path):
    work = workdir(tmp_path, "actionset1:\n\tfalse\n")
    forced = submit([], cwd=work, FORCE_COLOR="1")
    assert b"\x1b[31;1mFAILED:\x1b[0m" in forced.stderr and b"\r" not in forced.stderr
    always = submit(["--color=always"], cwd=work, NO_COLOR="1")
    assert b"\x1b[31;1mFAILED:\x1b[0m" in always.stderr
    both = submit([], cwd=work, NO_COLOR="1", FORCE_COLOR="1")
    assert b"\x1b" not in both.stderr and b"FAILED: [code=1] false" in both.stderr


@pytest.mark.timeout(60)
def test_no_status_line_when_stdout_goes_into_a_pipe_that_shows_it_on_the_same_terminal(tmp_path):
    # `rake-submit | tee log`: tee writes our stdout onto the terminal the status line is on.
    import os
    import pty
    import subprocess
    master, slave = pty.openpty()
    proc = subprocess.Popen(command("rake-submit"), cwd=workdir(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=rake_env(TERM="xterm-256color"))
    os.close(slave)
    out, _ = proc.communicate(timeout=50)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.returncode == 1 and out   # the Rakefile's failure, and its output
    assert status_lines(screen) == [] and b"\x1b[K" not in screen, screen
    assert b"\x1b[" in screen   # colour stays: stderr is still a terminal
