"""The Rakefile grammar (SPEC section 2): owns turning Rakefile text into validated, frozen data; no I/O."""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from protocol.paths import check_relative_path, normalise_path, quote_text as _quote
from protocol.schema import MAX_COMMAND

MAX_DIGITS = 1000   # of an actionset number: Python refuses to convert over 4300
MAX_ARG = 131071   # Linux's MAX_ARG_STRLEN (32 pages) less the NUL: one exec argument, in bytes
from submitter.hosts import Host, parse_host as _parse_host, parse_port as _parse_port
from submitter.shellhash import keep_escape_at_word_starts

DEFAULT_PORT = 6238
_BLANKS = " \t\r\f\v"  # stripped from line ends; a line of only these is blank
_INDENT = " \t"  # the SPEC allows any mix of tabs and spaces as indentation
_HASH = re.compile(r"\\#|#")
_WORD = re.compile(r"\s*([^\s=:]+|[=:]+)")
_REQUIRES = re.compile(r"requires(?=[ \t]|$)")   # words end at a shell's blanks, not at any Unicode space
_HEADER = re.compile(r"actionset[0-9]+[ \t]*:")


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Require:
    path: str
    line: int


@dataclass(frozen=True)
class Action:
    command: str
    remote: bool
    line: int
    requires: tuple[Require, ...] = ()


@dataclass(frozen=True)
class ActionSet:
    number: int
    line: int
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Rakefile:
    port: int = DEFAULT_PORT
    hosts: tuple[Host, ...] = ()
    actionsets: tuple[ActionSet, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def has_remote(self) -> bool:
        return any(a.remote for s in self.actionsets for a in s.actions)


class RakefileError(Exception):
    """Every error of one Rakefile, so the user can fix them all in one go."""

    def __init__(self, problems) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=lambda p: p.line))
        super().__init__(self.problems)  # keeps the exception picklable

    def format(self, filename: str, most: int = 50) -> str:
        """One line per problem, the first `most` of them (a binary file has one per line)."""
        lines = [p.format(filename) for p in self.problems[:most]]
        if len(self.problems) > most:
            lines.append(f"{filename}: ... and {len(self.problems) - most} more errors")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format("Rakefile")


def _strip_comment(line: str) -> str:
    """Cut at the first "#" (quotes do not protect it, as in make); "\\#" stands for "#"
    (kept as "\\#" where the shell would read a bare "#" as a comment: submitter/shellhash.py)."""
    parts, pos, size, escaped = [], 0, 0, []
    for m in _HASH.finditer(line):
        parts.append(line[pos:m.start()])
        size += m.start() - pos
        if m.group() == "#":
            break
        escaped.append(size)
        parts.append("#")
        size, pos = size + 1, m.end()
    else:
        parts.append(line[pos:])
    return keep_escape_at_word_starts("".join(parts), escaped).rstrip(_BLANKS)


def _split_lines(text: str | bytes) -> tuple[list[str], list[Problem]]:
    problems = []
    if isinstance(text, (bytes, bytearray)):
        lines = []
        # "\n" never occurs inside a multi-byte UTF-8 sequence, so line-by-line decoding is exact.
        for n, raw in enumerate(bytes(text).split(b"\n"), 1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                problems.append(Problem(n, "invalid UTF-8"))
                lines.append(raw.decode("utf-8", "replace"))
    else:
        lines = text.split("\n")  # not splitlines(): "\f", "\x1c", U+2028 do not end lines here
    lines[0] = lines[0].removeprefix("\ufeff")
    return [line.removesuffix("\r") for line in lines], problems


@dataclass
class _SetDraft:
    number: int | None  # None: a broken header, kept only so the lines below it are still checked
    line: int
    actions: list[tuple[str, bool, int, dict[str, int]]] = field(default_factory=list)

    def freeze(self) -> ActionSet:
        # Each action's requires: a dict path -> line, which drops duplicates and keeps order.
        return ActionSet(self.number, self.line, tuple(
            Action(c, r, n, tuple(Require(p, k) for p, k in reqs.items())) for c, r, n, reqs in self.actions))


class _Parser:
    def __init__(self, problems: list[Problem]) -> None:
        self.errors, self.warnings = problems, []
        # A line that is not UTF-8 is parsed with U+FFFD so its structure still counts,
        # but that one error is all it reports.
        self.bad_lines = {p.line for p in problems}
        self.port, self.port_line = None, 0
        self.hosts, self.hosts_line = [], 0  # hosts: (name, explicit port or None, line)
        self.sets: list[_SetDraft] = []
        self.numbers: dict[int, int] = {}  # actionset number -> line of its header
        self.highest = 0   # of self.numbers: max() at every header made 50 000 headers take 16 s
        self.current: _SetDraft | None = None

    def error(self, line: int, message: str) -> None:
        if line not in self.bad_lines:
            self.errors.append(Problem(line, message))

    def feed(self, n: int, content: str) -> None:
        if content[0] in _INDENT:
            self.indented(n, content.lstrip(_INDENT))
        else:
            m = _WORD.match(content)
            word = m.group(1) if m else content
            if word in ("PORT", "HOSTS"):
                self.setting(n, word, content)
            elif word.startswith("actionset"):
                self.header(n, content)
            else:
                near = word.upper() in ("PORT", "HOSTS") or word.lower().startswith("actionset")
                hint = " (keywords are case-sensitive)" if near else ""
                if content[0].isspace():   # looks indented in an editor: say what the blank is
                    hint = f" (the line starts with U+{ord(content[0]):04X}, not a tab or a space)"
                self.error(n, f"unknown directive {_quote(word)}{hint}")
                if word.lower().startswith("actionset"):   # "Actionset1:": a header all the same,
                    self.current = _SetDraft(None, n)       # as a broken one is (see header)

    def setting(self, n: int, word: str, text: str) -> None:
        m = re.fullmatch(word + r"\s*=\s*(.*)", text)
        first = self.port_line if word == "PORT" else self.hosts_line
        if not m:
            return self.error(n, f'expected "{word} = ...", got {_quote(text)}')
        if first:
            return self.error(n, f"duplicate {word} (first on line {first})")
        if word == "HOSTS":
            return self.hosts_setting(n, m.group(1).split())
        self.port_line, self.port = n, _parse_port(m.group(1))
        if self.port is None:
            self.error(n, f"PORT must be an integer 1..65535, got {_quote(m.group(1))}")

    def hosts_setting(self, n: int, entries: list[str]) -> None:
        self.hosts_line = n
        if not entries:
            self.error(n, "HOSTS lists no host")
        for entry in entries:
            try:
                self.hosts.append((*_parse_host(entry), n))
            except ValueError as e:
                self.error(n, str(e))

    def header(self, n: int, text: str) -> None:
        # Even a broken header opens a set, so one typo does not turn every action
        # below it into an "action outside any actionset" error.
        self.current = _SetDraft(None, n)
        m = re.fullmatch(r"actionset([^\s:]*)\s*:(.*)", text)
        if not m or m.group(2).strip():
            return self.error(n, f'expected "actionsetN:" alone on its line, got {_quote(text)}')
        digits = m.group(1)
        if not re.fullmatch(r"[0-9]+", digits):
            return self.error(n, f"actionset number must be a positive integer, got {_quote(digits)}")
        if len(digits.lstrip("0")) > MAX_DIGITS:   # only shown, never sent: any size would do
            return self.error(n, f"actionset number {_quote(digits)} is too big (at most {MAX_DIGITS} digits)")
        number = int(digits)
        if number == 0:
            return self.error(n, "actionset0 is not allowed: numbers start at 1")
        if number in self.numbers:
            return self.error(n, f"duplicate actionset{number} (first on line {self.numbers[number]}): "
                                 f"{_quote('actionset' + digits + ':')}")
        if number < self.highest:
            self.warnings.append(Problem(
                n, f"actionset{number} comes after actionset{self.highest}; actionsets run in file order"))
        self.numbers[number], self.current.number = n, number
        self.highest = max(self.highest, number)
        self.sets.append(self.current)

    def indented(self, n: int, text: str) -> None:
        if _REQUIRES.match(text):
            return self.requires(n, text[len("requires"):])
        if self.current is None:
            return self.error(n, f"action outside any actionset: {_quote(text)}")
        remote = text.startswith("remote-")
        command = text[len("remote-"):].lstrip(_BLANKS) if remote else text
        if not command:
            self.error(n, '"remote-" with no command after it')
        elif len(command) > MAX_COMMAND:
            self.error(n, f"command of {len(command)} characters is longer than {MAX_COMMAND}")
        elif len(command.encode("utf-8", "surrogateescape")) > MAX_ARG:
            self.error(n, f"command of {len(command.encode('utf-8', 'surrogateescape'))} bytes is longer than "
                          f"the {MAX_ARG} that /bin/sh -c can be given")
        if _HEADER.fullmatch(text):   # SPEC 2.4 (and make) run it; it cannot be meant so
            self.warnings.append(Problem(n, f"indented {_quote(text)} is run as a command, not read as a "
                                            "header (headers start in column 1): the actions below it stay in "
                                            f"actionset{self.current.number}, run at the same time"))
        if (len(command) - len(command.rstrip("\\"))) % 2:   # as make users would write it
            self.warnings.append(Problem(n, "ends in a backslash, but a Rakefile has no continuation "
                                            "lines: the shell gets the backslash, and the next line "
                                            "does not continue this command"))
        self.current.actions.append((command, remote, n, {}))

    def requires(self, n: int, rest: str) -> None:
        if self.current is None:
            return self.error(n, f"requires outside any actionset: {_quote('requires' + rest)}")
        if not self.current.actions:
            where = f"actionset{self.current.number}" if self.current.number else "this actionset"
            self.error(n, f"requires with no action above it in {where}: {_quote('requires' + rest)}")
        try:
            names = split_names(rest)
        except ValueError as e:   # a make user's continuation gets words, not shlex's "no escaped character"
            if str(e) == "No escaped character":   # only a last, unquoted backslash raises it
                return self.error(n, "requires ends in a backslash, but a Rakefile has no continuation lines: "
                                     "put the names on one line, or add another requires line")
            return self.error(n, f"requires: {str(e).lower()} in {_quote(rest.strip())}")
        if not names:
            self.error(n, "requires with no file name")
        for name in names:
            problem = check_relative_path(name)
            if problem:
                self.error(n, f"requires: {problem}")
            elif self.current.actions:
                self.current.actions[-1][3].setdefault(normalise_path(name), n)

    def finish(self) -> Rakefile:
        if self.errors:
            raise RakefileError(self.errors)
        port = self.port or DEFAULT_PORT  # PORT applies to HOSTS entries above it too
        hosts, seen = [], set()
        for name, explicit, n in self.hosts:
            host = Host(name, explicit or port, n)
            # Host names are case-insensitive, and one IPv6 address has many spellings.
            key = (str(ipaddress.IPv6Address(name)) if host.is_ipv6 else name.lower(), host.port)
            if key in seen:
                self.warnings.append(Problem(n, f"duplicate host {_quote(host.endpoint[6:])} dropped"))
            else:
                seen.add(key)
                hosts.append(host)
        warnings = tuple(sorted(self.warnings, key=lambda p: p.line))
        return Rakefile(port, tuple(hosts), tuple(s.freeze() for s in self.sets), warnings)


def split_names(rest: str) -> list[str]:
    """The words of a requires line, by POSIX shell rules (comments were stripped already).
    shlex reads one character at a time: a line with nothing to unquote is split directly."""
    if "'" in rest or '"' in rest or "\\" in rest:
        return shlex.split(rest)
    return [word for word in _SHELL_BLANKS.split(rest) if word]


_SHELL_BLANKS = re.compile(r"[ \t\r\n]+")   # shlex's whitespace, not str.split()'s wider set


def parse_rakefile(text: str | bytes) -> Rakefile:
    """Parse a whole Rakefile; raise RakefileError listing every error, in line order."""
    lines, problems = _split_lines(text)
    parser = _Parser(problems)
    for n, raw in enumerate(lines, 1):
        if "\0" in raw:   # even in a comment: sh -c cannot take one, and no text file means it
            parser.error(n, "NUL character in line")
            continue
        content = _strip_comment(raw)
        if content:  # comment-only and blank lines are ignored wherever they are
            parser.feed(n, content)
    return parser.finish()
