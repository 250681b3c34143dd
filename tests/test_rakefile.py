"""Tests of the Rakefile grammar (submitter/rakefile.py, SPEC section 2, docs/rakefile.md)."""

import json
import pickle
import re
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from submitter.rakefile import (
    DEFAULT_PORT,
    Action,
    Host,
    Problem,
    Rakefile,
    RakefileError,
    Require,
    check_relative_path,
    normalise_path,
    parse_rakefile,
)

CLASSIC = """\
# A typical Rakefile

PORT  = 6238
HOSTS = hostname1 hostname2 hostname3:6333

actionset1:
\techo starting actionset1
\tremote-cc -c program.c
\t\trequires program.c program.h allfunctions.h
\tremote-cc -c square.c
\t\trequires square.c allfunctions.h
\tremote-cc -c cube.c
\t\trequires cube.c allfunctions.h

actionset2:
\techo starting actionset2
\tremote-cc -o program program.o square.o cube.o
\t\trequires program.o square.o cube.o
"""

ACCEPTANCE = Path(__file__).resolve().parents[2] / "shared" / "acceptance"
ACCEPTANCE_RAKEFILES = sorted(ACCEPTANCE.glob("*/**/Rakefile"))


def errors_of(text):
    """(line, message) of every error parse_rakefile reports for `text`."""
    with pytest.raises(RakefileError) as info:
        parse_rakefile(text)
    return [(p.line, p.message) for p in info.value.problems]


def only_error(text):
    [(line, message)] = errors_of(text)
    return line, message


def actions(text, number=0):
    return parse_rakefile(text).actionsets[number].actions


def summary(rakefile):
    """Everything but line numbers, to compare two layouts of one Rakefile."""
    return (
        rakefile.port,
        [(h.host, h.port) for h in rakefile.hosts],
        [(s.number, [(a.command, a.remote, [r.path for r in a.requires]) for a in s.actions])
         for s in rakefile.actionsets],
    )


# --- the SPEC's classic example -------------------------------------------------------

CLASSIC_SUMMARY = (
    6238,
    [("hostname1", 6238), ("hostname2", 6238), ("hostname3", 6333)],
    [
        (1, [
            ("echo starting actionset1", False, []),
            ("cc -c program.c", True, ["program.c", "program.h", "allfunctions.h"]),
            ("cc -c square.c", True, ["square.c", "allfunctions.h"]),
            ("cc -c cube.c", True, ["cube.c", "allfunctions.h"]),
        ]),
        (2, [
            ("echo starting actionset2", False, []),
            ("cc -o program program.o square.o cube.o", True, ["program.o", "square.o", "cube.o"]),
        ]),
    ],
)


def test_classic_example_parses_with_tab_indentation():
    rakefile = parse_rakefile(CLASSIC)
    assert summary(rakefile) == CLASSIC_SUMMARY
    assert rakefile.warnings == ()
    assert rakefile.has_remote


def test_classic_example_parses_with_space_indentation():
    assert summary(parse_rakefile(CLASSIC.replace("\t", "    "))) == CLASSIC_SUMMARY


def test_classic_example_parses_with_mixed_tabs_and_spaces():
    assert summary(parse_rakefile(CLASSIC.replace("\t\t", " \t  ").replace("\t", "  \t"))) == CLASSIC_SUMMARY


def test_classic_example_records_line_numbers():
    rakefile = parse_rakefile(CLASSIC)
    first, second = rakefile.actionsets
    assert (first.line, second.line) == (6, 15)
    assert [a.line for a in first.actions] == [7, 8, 10, 12]
    assert first.actions[1].requires[0] == Require("program.c", 9)
    assert [h.line for h in rakefile.hosts] == [4, 4, 4]


# --- lines, encodings --------------------------------------------------------------

def test_crlf_line_endings_are_accepted():
    assert summary(parse_rakefile(CLASSIC.replace("\n", "\r\n"))) == CLASSIC_SUMMARY


def test_crlf_bytes_are_accepted():
    assert summary(parse_rakefile(CLASSIC.replace("\n", "\r\n").encode())) == CLASSIC_SUMMARY


def test_last_line_without_newline_is_parsed():
    assert actions("actionset1:\n\techo last")[0].command == "echo last"


def test_last_line_without_newline_can_be_a_comment():
    assert summary(parse_rakefile(CLASSIC + "# final comment")) == CLASSIC_SUMMARY


def test_bytes_are_decoded_as_utf8():
    assert actions("actionset1:\n\techo héllo ✓\n".encode())[0].command == "echo héllo ✓"


def test_leading_byte_order_mark_is_dropped():
    assert parse_rakefile("\ufeffPORT = 7000\n").port == 7000
    assert parse_rakefile(b"\xef\xbb\xbfPORT = 7000\n").port == 7000


def test_invalid_utf8_is_an_error_naming_the_line():
    assert only_error(b"actionset1:\n\techo ok\n\techo \xff\xfe\n") == (3, "invalid UTF-8")


def test_nul_character_in_a_line_is_an_error():
    assert only_error("actionset1:\n\techo a\0b\n") == (2, "NUL character in line")


def test_form_feed_and_other_line_separators_do_not_split_lines():
    assert actions("actionset1:\n\techo a\x0cb\u2028c\n")[0].command == "echo a\x0cb\u2028c"


# --- comments and blank lines ------------------------------------------------------

def test_comment_mid_word_is_stripped():
    assert actions("actionset1:\n\techo visible-two#hidden\n")[0].command == "echo visible-two"


def test_comment_after_a_command_is_stripped_with_its_blanks():
    assert actions("actionset1:\n\tremote-echo visible-one # hidden-one\n")[0].command == "echo visible-one"


def test_quotes_do_not_protect_a_hash():
    assert actions("actionset1:\n\techo 'a # b'\n")[0].command == "echo 'a"


def test_escaped_hash_is_a_literal_hash():
    assert actions("actionset1:\n\techo a\\#b # c\n")[0].command == "echo a#b"


def test_escaped_hash_works_in_requires_names():
    assert actions("actionset1:\n\tremote-cat x\n\t\trequires a\\#b.txt\n")[0].requires[0].path == "a#b.txt"


def test_other_backslashes_are_kept_verbatim():
    assert actions("actionset1:\n\tprintf 'a\\tb\\n' \\\\#x\n")[0].command == "printf 'a\\tb\\n' \\#x"


def test_comments_everywhere_are_ignored():
    text = (
        "# top\n"
        "   # indented with spaces, outside any actionset\n"
        "PORT  = 6238    # after PORT\n"
        "HOSTS = localhost localhost:6239   # after HOSTS\n"
        "actionset1:    # after a header\n"
        "\t# a full-line comment indented with one tab\n"
        "\tremote-cat a.txt b.txt  # after an action\n"
        "\t\trequires a.txt    # after a requires list\n"
        "\t\t# two tabs\n"
        "\t\trequires b.txt\n"
        "# final comment without a trailing newline"
    )
    rakefile = parse_rakefile(text)
    assert summary(rakefile) == (
        6238, [("localhost", 6238), ("localhost", 6239)], [(1, [("cat a.txt b.txt", True, ["a.txt", "b.txt"])])])


def test_blank_and_whitespace_only_lines_are_ignored_everywhere():
    text = " \t\n\nactionset1:\n\t\n\t\t\n   \n\techo a\n \n\t\trequires x\n\t \n"
    [action] = actions(text)
    assert (action.command, [r.path for r in action.requires]) == ("echo a", ["x"])


def test_trailing_blanks_are_ignored():
    assert actions("actionset1: \t\n\techo a  \t\n")[0].command == "echo a"


# --- PORT ---------------------------------------------------------------------------

@pytest.mark.parametrize("line", ["PORT = 7000", "PORT=7000", "PORT\t=  7000", "PORT =7000"])
def test_port_accepts_optional_blanks_around_equals(line):
    assert parse_rakefile(line + "\n").port == 7000


def test_port_defaults_to_6238():
    assert parse_rakefile("").port == DEFAULT_PORT == 6238


@pytest.mark.parametrize("value", ["0", "65536", "abc", "", "-1", "1.5", "7000 7001", "9" * 5000])
def test_port_outside_1_to_65535_is_an_error_naming_the_value(value):
    line, message = only_error(f"PORT = {value}\n")
    assert line == 1
    assert message.startswith("PORT must be an integer 1..65535, got \"")
    assert value[:20] in message


@pytest.mark.parametrize("value, port", [("06238", 6238), ("041801", 41801), ("0" * 5000 + "7", 7)])
def test_port_with_leading_zeros_is_read_as_decimal(value, port):
    assert parse_rakefile(f"PORT = {value}\nHOSTS = h:{value}\n").port == port
    assert parse_rakefile(f"HOSTS = h:{value}\n").hosts[0].port == port


def test_port_extremes_are_accepted():
    assert parse_rakefile("PORT = 1").port == 1
    assert parse_rakefile("PORT = 65535").port == 65535


def test_port_twice_is_an_error():
    assert only_error("PORT = 1\nPORT = 2\n") == (2, "duplicate PORT (first on line 1)")


def test_port_without_equals_is_an_error():
    assert only_error("PORT 6238\n") == (1, 'expected "PORT = ...", got "PORT 6238"')


# --- HOSTS --------------------------------------------------------------------------

def test_hosts_after_port_get_that_port():
    rakefile = parse_rakefile("PORT = 7000\nHOSTS = a b:7001\n")
    assert [h.endpoint for h in rakefile.hosts] == ["tcp://a:7000", "tcp://b:7001"]


def test_hosts_before_port_get_the_port_resolved_after_the_whole_file():
    rakefile = parse_rakefile("HOSTS = a b:7001\nactionset1:\n\techo x\nPORT = 7000\n")
    assert [(h.host, h.port) for h in rakefile.hosts] == [("a", 7000), ("b", 7001)]


def test_hosts_without_port_get_6238():
    assert parse_rakefile("HOSTS = a\n").hosts == (Host("a", 6238, 1),)


def test_host_with_explicit_port_keeps_it():
    assert parse_rakefile("PORT = 1\nHOSTS = 10.0.0.1:7001\n").hosts[0].endpoint == "tcp://10.0.0.1:7001"


def test_ipv6_in_brackets_with_and_without_port():
    hosts = parse_rakefile("PORT = 7000\nHOSTS = [::1]:7001 [fe80::2]\n").hosts
    assert [(h.host, h.port, h.is_ipv6) for h in hosts] == [("::1", 7001, True), ("fe80::2", 7000, True)]
    assert [h.endpoint for h in hosts] == ["tcp://[::1]:7001", "tcp://[fe80::2]:7000"]


def test_ipv6_with_an_interface_scope_is_accepted_in_brackets():
    assert parse_rakefile("HOSTS = [fe80::1%eth0]:5\n").hosts[0].endpoint == "tcp://[fe80::1%eth0]:5"


def test_ipv6_with_an_odd_scope_is_an_error():
    line, message = only_error("HOSTS = [fe80::1%a/b]\n")
    assert line == 1 and "is not an IPv6 address" in message


def test_hostnames_and_ipv4_are_not_ipv6():
    assert not Host("localhost", 1, 1).is_ipv6
    assert not Host("127.0.0.1", 1, 1).is_ipv6


def test_bare_ipv6_is_an_error_suggesting_brackets():
    line, message = only_error("HOSTS = ::1\n")
    assert line == 1 and '"::1"' in message and "[::1]" in message and "brackets" in message


@pytest.mark.parametrize("entry, named", [
    ("h:abc", '"abc"'), ("h:0", '"0"'), ("h:65536", '"65536"'), ("h:", '""'), ("[::1]:x", '"x"'),
])
def test_bad_host_port_is_an_error_naming_it(entry, named):
    line, message = only_error(f"HOSTS = good {entry}\n")
    assert line == 1 and message.startswith(f"bad port {named}") and entry in message


@pytest.mark.parametrize("entry", ["[::1", "[nothost]:1", "a:b:c", ":6238", "a/b", "tcp://h:1", "-h", "_h"])
def test_bad_host_is_an_error_naming_it(entry):
    line, message = only_error(f"HOSTS = {entry}\n")
    assert line == 1
    assert entry.strip("[]:").split(":")[0].split("]")[0] in message


def test_duplicate_host_is_dropped_with_a_warning():
    rakefile = parse_rakefile("HOSTS = a a:6238 b A [::1] [0::1]:6238 a:7000\n")
    assert [h.endpoint for h in rakefile.hosts] == ["tcp://a:6238", "tcp://b:6238", "tcp://[::1]:6238",
                                                     "tcp://a:7000"]
    assert [w.message for w in rakefile.warnings] == [
        'duplicate host "a:6238" dropped', 'duplicate host "A:6238" dropped', 'duplicate host "[0::1]:6238" dropped']
    assert {w.line for w in rakefile.warnings} == {1}


def test_duplicate_host_is_found_after_late_port_resolution():
    rakefile = parse_rakefile("HOSTS = a a:7000\nPORT = 7000\n")
    assert len(rakefile.hosts) == 1 and len(rakefile.warnings) == 1


def test_hosts_with_no_entries_is_an_error():
    assert only_error("HOSTS =   \n") == (1, "HOSTS lists no host")


def test_hosts_twice_is_an_error():
    assert only_error("HOSTS = a\nHOSTS = b\n") == (2, "duplicate HOSTS (first on line 1)")


def test_no_hosts_line_means_no_hosts_even_with_remote_actions():
    rakefile = parse_rakefile("actionset1:\n\tremote-echo x\n")
    assert rakefile.hosts == () and rakefile.has_remote


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


# --- requires -------------------------------------------------------------------------

def test_several_requires_lines_add_up():
    [action] = actions("actionset1:\n\tremote-cat a b c\n\t\trequires a\n\t\trequires b c\n")
    assert action.requires == (Require("a", 3), Require("b", 4), Require("c", 4))


def test_requires_belongs_to_the_most_recent_action():
    first, second = actions("actionset1:\n\tremote-a\n\t\trequires x\n\tremote-b\n\t\trequires y\n")
    assert [r.path for r in first.requires] == ["x"] and [r.path for r in second.requires] == ["y"]


def test_duplicate_requires_are_dropped_keeping_the_first():
    [action] = actions("actionset1:\n\tremote-x\n\t\trequires b a ./b\n\t\trequires a c\n")
    assert action.requires == (Require("b", 3), Require("a", 3), Require("c", 4))


def test_quoted_requires_names_keep_their_spaces():
    [action] = actions("actionset1:\n\tremote-cat x\n\t\trequires \"two words.txt\" 'it''s' a\\ b\n")
    assert [r.path for r in action.requires] == ["two words.txt", "its", "a b"]


def test_requires_paths_keep_subdirectories_and_are_normalised():
    [action] = actions("actionset1:\n\tremote-cc x\n\t\trequires inc/defs.h ./a//b .//c/./d\n")
    assert [r.path for r in action.requires] == ["inc/defs.h", "a/b", "c/d"]


def test_requires_on_a_local_action_is_kept():
    assert actions("actionset1:\n\tcat a\n\t\trequires a\n")[0].requires == (Require("a", 3),)


def test_requires_right_after_header_is_an_error_even_if_previous_set_had_actions():
    text = "actionset1:\n\ttouch m\nactionset2:\n\t\trequires orphan.c\n\tremote-cc -c orphan.c\n"
    assert only_error(text) == (4, "requires with no action above it in actionset2: \"requires orphan.c\"")


def test_requires_before_any_actionset_is_an_error():
    assert only_error("\trequires a.c\n") == (1, "requires outside any actionset: \"requires a.c\"")


def test_requires_with_no_file_is_an_error():
    assert only_error("actionset1:\n\tremote-x\n\t\trequires   # none\n") == (3, "requires with no file name")


def test_requires_with_unbalanced_quote_is_an_error():
    line, message = only_error("actionset1:\n\tremote-x\n\t\trequires 'a b\n")
    assert line == 3 and "no closing quotation" in message and "'a b" in message


@pytest.mark.parametrize("name, why", [
    ("/etc/passwd", "absolute"), ("../x", '".."'), ("a/../b", '".."'), (".", "directory"),
    ("dir/", "directory"), ("''", "empty"),
])
def test_requires_with_bad_path_is_an_error_naming_it(name, why):
    line, message = only_error(f"actionset1:\n\tremote-x\n\t\trequires ok.c {name}\n")
    assert line == 3 and why in message
    if name != "''":
        assert f'"{name}"' in message


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


# --- paths ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["a", "a/b", "./a", "a//b", "a/./b", "..a", "a..", ".hidden", "a b", "-x"])
def test_check_relative_path_accepts_relative_file_names(path):
    assert check_relative_path(path) is None


@pytest.mark.parametrize("path", ["", "/a", "//a", "..", "../a", "a/..", "a/../b", "a\0b", ".", "./", "a/", "./.", "//"])
def test_check_relative_path_rejects_unsafe_names(path):
    message = check_relative_path(path)
    assert isinstance(message, str) and "\n" not in message and "\0" not in message


@pytest.mark.parametrize("path, normal", [("./a//b", "a/b"), ("a", "a"), ("a/./b/", "a/b"), ("././x", "x")])
def test_normalise_path_gives_one_spelling_per_file(path, normal):
    assert normalise_path(path) == normal


# --- the acceptance cases -----------------------------------------------------------------

def test_acceptance_cases_are_found():
    if not ACCEPTANCE.is_dir():
        pytest.skip(f"no acceptance cases at {ACCEPTANCE}")
    assert len(ACCEPTANCE_RAKEFILES) >= 10


def expected_stderr(rakefile_path):
    front = rakefile_path.with_name("EXPECTED.md").read_text().split("---")[1]
    match = re.search(r"^stderr_contains:\s*(\[.*\])\s*$", front, re.M)
    return json.loads(match.group(1)) if match else []


@pytest.mark.parametrize("path", ACCEPTANCE_RAKEFILES, ids=lambda p: str(p.parent.relative_to(ACCEPTANCE)))
def test_acceptance_rakefile_parses_or_fails_as_expected(path):
    data = path.read_bytes()
    if not path.parent.relative_to(ACCEPTANCE).parts[0].startswith("20-"):
        assert isinstance(parse_rakefile(data), Rakefile)
        return
    with pytest.raises(RakefileError) as info:
        parse_rakefile(data)
    wanted = expected_stderr(path)
    lines = [int(w) for w in wanted if w.isdigit()]
    assert lines and [p.line for p in info.value.problems] == lines
    report = info.value.format("Rakefile")
    for word in wanted:
        assert word in report


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


def test_a_trailing_backslash_is_kept_and_warned_about_as_there_are_no_continuation_lines():
    rakefile = parse_rakefile("actionset1:\n\tremote-echo a \\\n\t\tb c\n\techo done \\\\\n")
    commands = [a.command for a in rakefile.actionsets[0].actions]
    assert commands == ["echo a \\", "b c", "echo done \\\\"]   # an escaped backslash is no warning
    assert [(w.line, w.message.split(",")[0]) for w in rakefile.warnings] == [(2, "ends in a backslash")]


@pytest.mark.parametrize("line", ["a b  c", " a\tb\r\n", "a\x0bb c", "x\xa0y z", 'a "b c" d', "a\\ b",
                                  "", "   ", "ü ä", "x\x0cy", "'one two'"])
def test_requires_words_are_split_as_shlex_splits_them(line):
    from submitter.rakefile import split_names
    assert split_names(line) == shlex.split(line)


def test_a_file_of_a_thousand_errors_reports_the_first_fifty_and_how_many_more():
    with pytest.raises(RakefileError) as caught:
        parse_rakefile(b"\xff\n" * 1000)
    lines = caught.value.format("Rakefile").splitlines()
    assert len(lines) == 51 and lines[0].startswith("Rakefile:1:") and lines[-1] == "Rakefile: ... and 950 more errors"
