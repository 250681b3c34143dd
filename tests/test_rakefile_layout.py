"""Rakefile layout: the SPEC's classic example, line endings, encodings, comments and blanks."""

from submitter.rakefile import Require, parse_rakefile

from tests.rakefile_helpers import actions, only_error


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


def test_escaped_hash_starting_a_shell_word_stays_escaped_so_the_shell_does_not_read_a_comment():
    # "echo #define X > config.h" would be sh's "echo" and a comment: no config.h at all
    assert actions("actionset1:\n\techo \\#define X > config.h\n")[0].command == "echo \\#define X > config.h"
    assert actions("actionset1:\n\tremote-\\#x; true\n")[0].command == "\\#x; true"
    assert actions("actionset1:\n\ttrue;\\#x\n")[0].command == "true;\\#x"


def test_escaped_hash_inside_quotes_or_mid_word_loses_its_backslash():
    assert actions("actionset1:\n\techo 'a \\#b' \"c \\#d\" e\\#f\n")[0].command == "echo 'a #b' \"c #d\" e#f"


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


def test_escaped_hash_starting_a_word_inside_a_quoted_command_substitution_reaches_the_shell_as_a_hash():
    # Within "$( )" and "` `" sh reads words afresh: a bare "#" there began a comment, so
    # "$(grep #define v.h)" lost its ")" (a syntax error) and "`echo #x`" printed nothing.
    import subprocess
    cases = {'x="$(echo \\#a)"; echo "$x"': "#a", 'echo "`echo \\#b`"': "#b",
             'echo "$( (echo \\#c) )" "\\#d" \'\\#e\'': "#c #d #e", 'echo "$(echo "(" \\#f)"': "( #f"}
    for text, printed in cases.items():
        command = actions(f"actionset1:\n\t{text}\n")[0].command
        run = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=10)
        assert run.stdout == printed + "\n", (text, command, run.stderr)
