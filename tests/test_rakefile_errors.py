"""How Rakefile errors are collected and reported, and that no input raises anything else."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from submitter.rakefile import Problem, Rakefile, RakefileError, parse_rakefile

from tests.rakefile_helpers import errors_of, only_error


# --- all errors at once -------------------------------------------------------------------

def test_all_errors_are_collected_in_line_order():
    text = (
        "\techo stray\n"          # 1
        "PORT = x\n"              # 2
        "HOSTS = ::1 h:0\n"       # 3
        "actionset1:\n"           # 4
        "\t\trequires a\n"        # 5
        "\tremote-\n"             # 6
        "\t\trequires /abs\n"     # 7
        "TIMEOUT = 3\n"           # 8
        "actionset1:\n"           # 9
        "actionset0:\n"           # 10
    ).encode() + b"\techo \xff\n" + b"\techo \0\n"  # 11, 12
    lines = [line for line, _ in errors_of(text)]
    assert lines == [1, 2, 3, 3, 5, 6, 7, 8, 9, 10, 11, 12]


def test_invalid_utf8_is_collected_with_the_other_errors_once_per_line():
    assert errors_of(b"TIMEOUT = 1\n\xc3\x28\nactionset0:\n") == [
        (1, 'unknown directive "TIMEOUT"'), (2, "invalid UTF-8"), (3, "actionset0 is not allowed: numbers start at 1")]


def test_invalid_utf8_line_still_counts_as_what_it_looks_like():
    assert errors_of(b"actionset1:\n\techo \xff\n\t\trequires a\n") == [(2, "invalid UTF-8")]


def test_error_format_is_file_line_message():
    with pytest.raises(RakefileError) as info:
        parse_rakefile("actionset1:\n\techo a\nTIMEOUT = 30\nactionset0:\n")
    assert info.value.format("Rakefile") == (
        'Rakefile:3: unknown directive "TIMEOUT"\nRakefile:4: actionset0 is not allowed: numbers start at 1')
    assert str(info.value) == info.value.format("Rakefile")
    assert Problem(7, "m").format("x/Rakefile") == "x/Rakefile:7: m"


def test_error_survives_pickling():
    with pytest.raises(RakefileError) as info:
        parse_rakefile("TIMEOUT = 1\n")
    assert pickle.loads(pickle.dumps(info.value)).problems == info.value.problems


def test_messages_are_one_line_even_for_odd_text():
    for _, message in errors_of("X\x1b[31m\u2028 = 1\n"):
        assert "\n" not in message and "\x1b" not in message and "\u2028" not in message


def test_empty_file_is_valid():
    assert parse_rakefile("") == Rakefile()
    assert parse_rakefile(b"") == Rakefile()


def test_file_of_only_empty_actionsets_is_valid():
    rakefile = parse_rakefile("actionset1:\n\nactionset2:\n")
    assert [s.actions for s in rakefile.actionsets] == [(), ()] and not rakefile.has_remote


# --- robustness ---------------------------------------------------------------------------

RAKEFILE_ALPHABET = st.sampled_from(
    list("PORTHSacinoteqursemx-=:[]#\\'\" \t\r\n0123456789/.\0\ufeff\u2028é") + [
        "PORT", "HOSTS", "actionset", "requires", "remote-", "\n\t", "\n"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.lists(RAKEFILE_ALPHABET).map("".join)))
def test_arbitrary_text_never_raises_anything_but_rakefile_error(text):
    try:
        parse_rakefile(text)
    except RakefileError as e:
        assert e.problems and all(p.line >= 1 and "\n" not in p.message for p in e.problems)


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_arbitrary_bytes_never_raise_anything_but_rakefile_error(data):
    try:
        parse_rakefile(data)
    except RakefileError:
        pass


def test_a_command_too_long_for_the_wire_is_a_rakefile_error():
    with pytest.raises(RakefileError) as e:
        parse_rakefile("actionset1:\n\techo " + "a" * 140_000 + "\n")
    assert [p.line for p in e.value.problems] == [2]
    assert "longer than" in e.value.problems[0].message


@pytest.mark.parametrize("command, fits", [
    ("a" * 131071, True), ("a" * 131072, False), ("é" * 65535, True), ("é" * 65536, False),
])
def test_a_command_over_what_one_exec_argument_may_hold_in_bytes_is_a_rakefile_error(command, fits):
    text = f"actionset1:\n\t{command}\n"
    if fits:
        assert parse_rakefile(text).actionsets[0].actions[0].command == command
        return
    line, message = only_error(text)
    assert line == 2 and "bytes is longer than the 131071 that /bin/sh -c can be given" in message


def test_a_file_of_a_thousand_errors_reports_the_first_fifty_and_how_many_more():
    with pytest.raises(RakefileError) as caught:
        parse_rakefile(b"\xff\n" * 1000)
    lines = caught.value.format("Rakefile").splitlines()
    assert len(lines) == 51 and lines[0].startswith("Rakefile:1:") and lines[-1] == "Rakefile: ... and 950 more errors"


def test_a_line_indented_with_a_no_break_space_says_which_blank_it_starts_with():
    assert errors_of("actionset1:\n\u00a0\techo y\n") == [
        (2, 'unknown directive "echo" (the line starts with U+00A0, not a tab or a space)')]
