"""Rakefile requires lines and the paths they name."""

import shlex

import pytest

from submitter.rakefile import Require, check_relative_path, normalise_path

from tests.rakefile_helpers import actions, only_error


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


def test_requires_ending_in_a_backslash_says_there_are_no_continuation_lines():
    # make users continue a prerequisite list with a backslash; shlex's "no escaped character" hid that
    line, message = only_error("actionset1:\n\tremote-x\n\t\trequires a.c b.c \\\n\t\trequires c.h\n")
    assert line == 3 and "backslash" in message and "no continuation lines" in message


@pytest.mark.parametrize("name, why", [
    ("/etc/passwd", "absolute"), ("../x", '".."'), ("a/../b", '".."'), (".", "directory"),
    ("dir/", "directory"), ("a.txt/.", "directory"), ("''", "empty"),
])
def test_requires_with_bad_path_is_an_error_naming_it(name, why):
    line, message = only_error(f"actionset1:\n\tremote-x\n\t\trequires ok.c {name}\n")
    assert line == 3 and why in message
    if name != "''":
        assert f'"{name}"' in message


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


@pytest.mark.parametrize("line", ["a b  c", " a\tb\r\n", "a\x0bb c", "x\xa0y z", 'a "b c" d', "a\\ b",
                                  "", "   ", "ü ä", "x\x0cy", "'one two'"])
def test_requires_words_are_split_as_shlex_splits_them(line):
    from submitter.rakefile import split_names
    assert split_names(line) == shlex.split(line)
