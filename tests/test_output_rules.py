"""The rules behind rake-submit's output, in memory: colour precedence, eliding, counting."""

from __future__ import annotations

import io

import pytest

from submitter.progress import Progress, human_size
from submitter.rakefile import parse_rakefile
from submitter.report import Reporter
from submitter.terminal import color_setting, elide, use_color


@pytest.mark.parametrize("flag, configured, env, expected", [
    (None, None, {}, ("auto", "default")),
    ("never", None, {"FORCE_COLOR": "1"}, ("never", "--color")),
    ("always", None, {"NO_COLOR": "1"}, ("always", "--color")),
    ("auto", ("never", "cfg"), {}, ("never", "cfg")),
    (None, None, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, ("never", "NO_COLOR")),
    (None, None, {"NO_COLOR": ""}, ("auto", "default")),              # empty means unset
    (None, None, {"FORCE_COLOR": "0"}, ("always", "FORCE_COLOR")),     # any non-empty value forces
    (None, ("always", "cfg"), {"NO_COLOR": "x"}, ("never", "NO_COLOR")),  # environment beats file
    (None, ("never", "cfg"), {}, ("never", "cfg")),
])
def test_colour_choice_follows_flag_then_no_color_then_force_color_then_file(flag, configured, env, expected):
    assert color_setting(flag, configured, env) == expected


def test_auto_colour_needs_a_smart_terminal():
    assert use_color("auto", True) and not use_color("auto", False)
    assert use_color("always", False) and not use_color("never", True)


@pytest.mark.parametrize("text", ["echo 日本語のコマンド" * 6, "echo 🎉🎉 done " * 8, "e\u0301" * 60 + "x" * 30])
@pytest.mark.parametrize("width", [4, 19, 20, 79])
def test_elide_counts_terminal_columns_so_wide_characters_never_wrap(text, width):
    from submitter.terminal import columns
    cut = elide(text, width)
    assert columns(cut) <= width
    assert columns(cut) >= width - 2 or cut == text   # a wide character at either cut leaves a column free


def test_elide_keeps_both_ends_within_the_width():
    assert elide("short", 10) == "short"
    cut = elide("cc -O2 -c a-very-long-source-file-name.c -o out.o", 20)
    assert len(cut) == 20 and cut.startswith("cc -O2 -") and cut.endswith("-o out.o") and "..." in cut


def test_status_and_summary_count_every_action_once():
    rakefile = parse_rakefile(b"actionset1:\n\ta\n\tremote-b\nactionset2:\n\tremote-c\n")
    a, b = rakefile.actionsets[0].actions
    p = Progress()
    p.begin(rakefile, now=100.0)
    p.start(a, "local", 0, 100.0, 1e9)
    p.start(b, "w1", 0, 100.1, 1e9)
    assert p.status() == "[0/3] w1: b"
    ended = p.end(b, "w1", False, 101.5, 1e9 + 1)
    assert (ended.seq, round(ended.runtime, 3)) == (2, 1.4)
    assert p.status() == "[1/3] local: a"
    p.end(a, "local", True, 102.0, 1e9 + 2)
    assert p.summary(102.5, 2048, 5) == "1 action ok, 1 failed, 1 not run, 1 worker, 2.50s, sent 2.0 KiB, received 5 B"
    assert human_size(3 << 20) == "3.0 MiB"


def test_remote_actions_an_interrupt_cut_short_are_unfinished_not_unrun_and_their_workers_count():
    rakefile = parse_rakefile(b"actionset1:\n\tsleep 5\n\tremote-sleep 5\n\tremote-sleep 6\n\tremote-x\n")
    a, b, c, _ = rakefile.actionsets[0].actions
    p = Progress()
    p.begin(rakefile, now=100.0)
    p.start(a, "local", 0, 100.0, 1e9)
    p.start(b, "w1", 0, 100.0, 1e9)
    p.start(c, "w2", 0, 100.0, 1e9)
    p.end(a, "local", False, 101.0, 1e9)   # interrupted: FAILED [cancelled]
    assert p.summary(101.0, 0, 0) == "0 actions ok, 1 failed, 2 unfinished, 1 not run, 2 workers, 1.00s, sent 0 B, received 0 B"


def test_a_worker_that_lost_an_attempt_counts_among_the_workers_that_ran_actions():
    """docs/configuration.md: distinct workers that ran at least one action, finished or not."""
    rakefile = parse_rakefile(b"actionset1:\n\tremote-sleep 4\n")
    [a] = rakefile.actionsets[0].actions
    p = Progress()
    p.begin(rakefile, now=100.0)
    p.start(a, "w1", 0, 100.0, 1e9)
    p.start(a, "w2", 0, 102.0, 1e9)   # w1 was lost: retried on w2
    p.end(a, "w2", True, 106.0, 1e9)
    assert p.summary(106.0, 0, 0) == "1 action ok, 0 failed, 2 workers, 6.00s, sent 0 B, received 0 B"


def test_bytes_received_count_what_came_inline_not_the_size_a_worker_announced():
    from protocol import FileRef
    from submitter.traffic import inline_bytes
    refs = (FileRef(path="a", mode=0o644, blob=0, digest="", size=2 ** 63 - 1),
            FileRef(path="b", mode=0o644, blob=None, digest="ab" * 32, size=10),   # fetched apart
            FileRef(path="c", mode=0o644, blob=1, digest="", size=0))
    assert inline_bytes(refs, [b"real", b"xy"]) == 6


def test_without_a_terminal_the_reporter_writes_no_escape_and_no_carriage_return():
    out, err = io.BytesIO(), io.BytesIO()
    r = Reporter(out=out, err=err)
    rakefile = parse_rakefile(b"actionset1:\n\tremote-b\n")
    r.begin(rakefile)
    action = rakefile.actionsets[0].actions[0]
    r.started(action, "w1")
    r.action_ended(1, action, "w1", "exited", 2, b"o\n", b"e\n")
    r.summary(0, 0)
    assert out.getvalue() == b"o\n"
    assert err.getvalue().startswith(b"FAILED: [code=2] b (actionset 1, line 2, on w1)\ne\nrake: 0 actions ok, 1 failed")
    assert b"\x1b" not in err.getvalue() and b"\r" not in err.getvalue()


def test_a_required_symlink_may_point_inside_the_working_directory_but_not_outside(tmp_path):
    from submitter.inputs import missing_requires
    from submitter.rakefile import parse_rakefile
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    work = tmp_path / "work"
    work.mkdir()
    (work / "real.h").write_text("#define X 1\n")
    (work / "alias.h").symlink_to("real.h")
    (work / "leak.txt").symlink_to(outside)
    rakefile = parse_rakefile("actionset1:\n\tremote-cat alias.h leak.txt\n\t\trequires alias.h leak.txt\n")
    [problem] = missing_requires(rakefile.actionsets[0], str(work))
    assert problem.startswith("line 3: required file 'leak.txt' is a symbolic link to a file outside")


def test_a_blob_is_served_from_a_file_that_still_holds_it_when_another_with_the_same_contents_changed(tmp_path):
    from submitter.inputs import InputIndex
    (tmp_path / "Y").write_bytes(b"same contents")
    (tmp_path / "X").write_bytes(b"same contents")
    index = InputIndex(str(tmp_path))
    digest = index.describe("Y")[1]
    assert index.describe("X")[1] == digest
    (tmp_path / "X").write_bytes(b"SAME contents")   # X changed in place since; Y did not
    assert index.locate(digest) == str(tmp_path / "Y")
    (tmp_path / "Y").write_bytes(b"gone tooooooo")
    assert index.locate(digest) is None                # answered CHUNK{missing}, never wrong bytes


def test_a_line_of_ours_after_output_without_a_final_newline_starts_on_a_line_of_its_own():
    import io
    from submitter.output import Output
    out, err = io.BytesIO(), io.BytesIO()
    o = Output(out, err)
    o.write("err", b"partial")                 # an action's stderr, no newline at the end
    o.write("err", b"FAILED: x\n", ours=True)
    o.write("out", b"raw")                     # stdout stays exactly as the action wrote it
    o.write("err", b"rake: note\n", ours=True)
    assert err.getvalue() == b"partial\nFAILED: x\nrake: note\n" and out.getvalue() == b"raw"


def test_output_written_by_its_thread_keeps_the_order_given_and_is_all_there_after_drain(tmp_path):
    from submitter.output import Output
    path = tmp_path / "both"
    with open(path, "wb") as fh:               # one file for both, as 2>&1
        o = Output(fh, fh, threaded=True)
        for i in range(200):
            o.write("out", b"o%d" % i)
            o.write("err", b"e%d\n" % i, ours=True)
        o.drain()
    lines = path.read_bytes().split(b"\n")
    assert lines[:2] == [b"o0", b"e0"] and lines[-2:] == [b"e199", b""] and len(lines) == 401


def test_a_required_name_through_a_linked_directory_is_followed_inside_the_working_directory_only(tmp_path):
    from submitter.inputs import missing_requires
    from submitter.rakefile import parse_rakefile
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.h").write_text("x")
    work = tmp_path / "work"
    (work / "real-inc").mkdir(parents=True)
    (work / "real-inc" / "defs.h").write_text("#define X 1\n")
    (work / "inc").symlink_to("real-inc")                 # inside: as make, it is followed
    (work / "out").symlink_to(tmp_path / "elsewhere")     # leads outside: refused
    rakefile = parse_rakefile("actionset1:\n\tremote-cat inc/defs.h\n\t\trequires inc/defs.h out/secret.h\n")
    [problem] = missing_requires(rakefile.actionsets[0], str(work))
    assert problem.startswith("line 3: required file 'out/secret.h' is reached through a symbolic link to a "
                              "directory outside the working directory")
