"""Rakefile actionset headers, unknown directives and actions."""

import pytest

from submitter.rakefile import Action, Rakefile, parse_rakefile

from tests.rakefile_helpers import actions, only_error


# --- actionset headers ---------------------------------------------------------------

def test_actionset_header_allows_blanks_before_colon():
    assert [s.number for s in parse_rakefile("actionset1 :\nactionset2\t:\nactionset3:\n").actionsets] == [1, 2, 3]


def test_actionset_zero_is_an_error():
    assert only_error("actionset0:\n") == (1, "actionset0 is not allowed: numbers start at 1")


def test_duplicate_actionset_is_an_error_naming_the_first_line():
    text = "actionset1:\n\techo a\n\nactionset2:\n\techo b\nactionset2:\n\techo c\n"
    assert only_error(text) == (6, "duplicate actionset2 (first on line 4): \"actionset2:\"")


def test_actionsets_out_of_order_only_warn_and_keep_file_order():
    rakefile = parse_rakefile("actionset2:\n\techo two\nactionset1:\n\techo one\nactionset5:\n")
    assert [s.number for s in rakefile.actionsets] == [2, 1, 5]
    assert [(w.line, w.message) for w in rakefile.warnings] == [
        (3, "actionset1 comes after actionset2; actionsets run in file order")]


def test_gaps_in_actionset_numbers_are_fine():
    assert parse_rakefile("actionset1:\nactionset7:\n").warnings == ()


@pytest.mark.parametrize("header, named", [
    ("actionsetx:", '"x"'), ("actionset:", '""'), ("actionset-1:", '"-1"'),
])
def test_actionset_number_that_is_not_a_positive_integer_is_an_error(header, named):
    line, message = only_error(header + "\n")
    assert line == 1 and message.startswith("actionset number must be a positive integer") and named in message


def test_an_actionset_number_of_any_sensible_size_is_fine_and_a_huge_one_says_so():
    assert parse_rakefile("actionset" + "9" * 26 + ":\n").actionsets[0].number == 10 ** 26 - 1
    line, message = only_error("actionset" + "1" * 1001 + ":\n")
    assert message.endswith("is too big (at most 1000 digits)")


@pytest.mark.parametrize("header", ["actionset1", "actionset1: echo hi", "actionsets = 3"])
def test_malformed_actionset_header_is_an_error(header):
    line, message = only_error(header + "\n\techo below-is-not-outside\n")
    assert line == 1 and message.startswith('expected "actionsetN:"')


def test_empty_actionsets_are_kept():
    rakefile = parse_rakefile("actionset1:\nactionset2:\n\techo b\nactionset3:\n")
    assert [(s.number, len(s.actions)) for s in rakefile.actionsets] == [(1, 0), (2, 1), (3, 0)]


# --- unknown directives ---------------------------------------------------------------

@pytest.mark.parametrize("line, word", [
    ("TIMEOUT = 30", "TIMEOUT"), ("TIMEOUT=30", "TIMEOUT"), ("echo hi", "echo"), ("PORTS = 1", "PORTS"),
    ("= 5", "="), ("requires a.c", "requires"),
])
def test_unknown_directive_names_the_first_word(line, word):
    assert only_error(f"actionset1:\n\techo x\n{line}\n") == (3, f'unknown directive "{word}"')


@pytest.mark.parametrize("line", ["port = 1", "Hosts = a", "ActionSet1:"])
def test_keywords_are_case_sensitive(line):
    line_number, message = only_error(line + "\n")
    assert message.startswith("unknown directive") and "case-sensitive" in message


def test_a_header_with_a_capital_letter_is_one_error_not_one_per_action_below_it():
    assert only_error("Actionset1:\n\techo x\n\techo y\n\trequires a\n") == (
        1, 'unknown directive "Actionset1" (keywords are case-sensitive)')


def test_a_nul_is_an_error_even_in_a_comment():
    assert only_error("actionset1:\n\techo ran # a \0 here\n") == (2, "NUL character in line")
    assert only_error("# \0\nactionset1:\n\techo ran\n") == (1, "NUL character in line")


@pytest.mark.parametrize("blank", ["\xa0", "\f", "\u2028", "\x1c"])
def test_requires_is_a_word_only_when_a_space_or_tab_ends_it_as_in_a_shell(blank):
    assert actions(f"actionset1:\n\techo x\n\trequires{blank}a.c\n")[1].command == f"requires{blank}a.c"


# --- actions ---------------------------------------------------------------------------

def test_remote_prefix_marks_remote_and_is_removed():
    assert actions("actionset1:\n\tremote-cc -c a.c\n")[0] == Action("cc -c a.c", True, 2, ())


def test_remote_in_the_middle_is_local():
    assert actions("actionset1:\n\techo remote-x\n")[0] == Action("echo remote-x", False, 2, ())


def test_remote_prefix_with_no_command_is_an_error():
    assert only_error("actionset1:\n\tremote-   # nothing\n") == (2, '"remote-" with no command after it')


def test_action_keeps_its_text_verbatim_apart_from_indentation():
    command = "printf '%s\\n'  \"a  b\" | tr a-z A-Z > out.txt 2>&1"
    assert actions(f"actionset1:\n \t  {command}\n")[0].command == command


def test_action_before_any_actionset_is_an_error():
    assert only_error("PORT = 6238\n\ttouch stray\nactionset1:\n\techo ok\n") == (
        2, 'action outside any actionset: "touch stray"')


def test_word_starting_with_requires_is_an_action():
    assert actions("actionset1:\n\trequiresfoo a b\n")[0].command == "requiresfoo a b"


def test_has_remote_is_false_without_remote_actions():
    assert not parse_rakefile("actionset1:\n\techo a\n").has_remote
    assert not Rakefile().has_remote


def test_a_trailing_backslash_is_kept_and_warned_about_as_there_are_no_continuation_lines():
    rakefile = parse_rakefile("actionset1:\n\tremote-echo a \\\n\t\tb c\n\techo done \\\\\n")
    commands = [a.command for a in rakefile.actionsets[0].actions]
    assert commands == ["echo a \\", "b c", "echo done \\\\"]   # an escaped backslash is no warning
    assert [(w.line, w.message.split(",")[0]) for w in rakefile.warnings] == [(2, "ends in a backslash")]


@pytest.mark.parametrize("line", ["\tactionset2:", "  actionset2 :", "\t actionset2:   # comment"])
def test_an_indented_actionset_header_stays_an_action_as_spec_and_make_have_it_but_is_warned_about(line):
    rakefile = parse_rakefile(f"actionset1:\n\techo one\n{line}\n\techo two\n")
    header = line.split("#")[0].strip()
    assert [a.command for a in rakefile.actionsets[0].actions] == ["echo one", header, "echo two"]
    assert [(w.line, w.message.split(" is run as")[0]) for w in rakefile.warnings] == [(3, f'indented "{header}"')]
    assert "actionset1, run at the same time" in rakefile.warnings[0].message


def test_commands_that_merely_start_like_a_header_are_not_warned_about():
    rakefile = parse_rakefile("actionset1:\n\tactionset2: ; true\n\techo actionset2:\n")
    assert [a.command for a in rakefile.actionsets[0].actions] == ["actionset2: ; true", "echo actionset2:"]
    assert rakefile.warnings == ()


@pytest.mark.timeout(30)
def test_rake_submit_warns_of_an_indented_header_before_running(tmp_path):
    from tests.procs import submit
    (tmp_path / "Rakefile").write_text("actionset1:\n\ttouch one.txt\n\tactionset2:\n")
    res = submit([], cwd=tmp_path, timeout=20)
    assert res.returncode == 1, res   # the "command" actionset2: is not found (127)
    assert b'Rakefile:3: indented "actionset2:" is run as a command' in res.stderr, res.stderr
    assert (tmp_path / "one.txt").exists()
