"""Helpers shared by the Rakefile parser tests: the errors and the actions of a parse."""

import pytest

from submitter.rakefile import RakefileError, parse_rakefile


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
