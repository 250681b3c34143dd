"""Configuration files: find, parse and check them; say where each effective value came from.

Files, later ones winning key by key: the system file (`/etc/rake/config.toml`, or the path
in `RAKE_SYSTEM_CONFIG`, a knob for tests), then the user's file
(`$XDG_CONFIG_HOME/rake/config.toml`, default `~/.config/rake/config.toml`). Top-level keys
are rake-submit's; the `[rake-worker]` and `[rake-broker]` tables are those programs' (named
after the programs, since a top-level `broker = ...` and a `[broker]` table cannot coexist).
A file is checked whole, whichever program reads it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

from protocol.timing import Timing
from rake_common.endpoints import endpoint_problem, parse_http_addr

SYSTEM_PATH = "/etc/rake/config.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


class ConfigError(Exception):
    """A configuration file cannot be used; the message is `path[:line]: what is wrong`."""


def _endpoint(v: Any) -> str | None:
    return endpoint_problem(v)


def _bind_endpoint(v: Any) -> str | None:
    return endpoint_problem(v, bind=True)


def _http_addr(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string such as \"127.0.0.1:8080\""
    try:
        parse_http_addr(v)
    except ValueError as e:
        return f"must be HOST:PORT: {e}"
    return None


def _int_range(low: int, high: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
        return None if ok else f"must be an integer from {low} to {high}"
    return check


def _seconds(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e9
    return None if ok else "must be a number of seconds above 0 and below 1e9"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(f'"{c}"' for c in choices)
    return check


def _text(v: Any, most: int = 4096) -> str | None:
    if not (isinstance(v, str) and 1 <= len(v) <= most):
        return "must be a non-empty string" + (f" of at most {most} characters" if most < 4096 else "")
    if "\0" in v:   # TOML's "\u0000": no path, and no environment variable (RAKE_WORKER), can hold one
        return "must not hold a NUL character"
    return None


def _name(v: Any) -> str | None:
    return _text(v, 256)   # rake-worker's own limit for --name


def _positive(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1e9
    return None if ok else "must be above 0 and at most 1e9"


# section ("" = top level) -> key -> check (None when fine, else what it must be)
SCHEMA: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "": {
        "broker": _endpoint, "jobs": _int_range(1, 1 << 20), "color": _one_of("auto", "always", "never"),
        "timeout": _seconds, "connect_timeout": _seconds, "worker_wait": _seconds, "broker_wait": _seconds,
        "curve_key": _text, "server_key": _text,
    },
    "rake-worker": {
        "broker": _endpoint, "slots": _int_range(1, 4096), "name": _name, "workdir": _text,
        "cache_dir": _text, "cache_size": _int_range(1, 1 << 30), "isolate": _one_of("auto", "pidns", "none"),
        "log_level": _one_of(*LOG_LEVELS), "log_format": _one_of(*LOG_FORMATS),
        "curve_key": _text, "server_key": _text,
    },
    "rake-broker": {
        "bind": _bind_endpoint, "log_level": _one_of(*LOG_LEVELS), "log_format": _one_of(*LOG_FORMATS),
        "curve_secret": _text, "submitter_keys": _text, "worker_keys": _text,
        "rate": _positive, "burst": _int_range(1, 1 << 30), "http": _http_addr,
    },
}


@dataclass
class Config:
    """Merged values of every file read: (section, key) -> (value, path it came from)."""
    values: dict[tuple[str, str], tuple[Any, str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def get(self, section: str, key: str) -> tuple[Any, str] | None:
        return self.values.get((section, key))


def config_paths(env: dict[str, str] | None = None) -> list[str]:
    """The files to read, lowest precedence first."""
    env = os.environ if env is None else env
    system = env.get("RAKE_SYSTEM_CONFIG") or SYSTEM_PATH
    base = env.get("XDG_CONFIG_HOME") or (home_dir() and os.path.join(home_dir(), ".config"))
    return [system] + ([os.path.join(base, "rake", "config.toml")] if base else [])


def usable_cpus() -> int:
    """CPUs this process may run on (taskset, a container's cpuset), as ninja counts them;
    the default number of slots."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def home_dir() -> str | None:
    """The user's home directory, or None where there is none to be had (no HOME and no
    passwd entry, as in `docker run --user 12345`): never a literal "~" relative to here."""
    home = os.path.expanduser("~")
    return None if home.startswith("~") else home


def load_config(env: dict[str, str] | None = None) -> Config:
    """Read every file that exists; a missing file is fine, a broken one is a ConfigError."""
    config = Config()
    for path in config_paths(env):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            continue
        except PermissionError as e:
            if not _reachable(path):   # a home we may not look into (su -m, sudo -E): no file of ours
                continue
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
        for (section, key), value in parse_config(data, path).items():
            config.values[(section, key)] = (value, path)
        config.files.append(path)
    return config


def _reachable(path: str) -> bool:
    """Whether `path` can be looked at: False when a directory on the way may not be searched."""
    try:
        os.stat(path)
    except PermissionError:
        return False
    except OSError:
        pass
    return True


def parse_config(data: bytes, path: str) -> dict[tuple[str, str], Any]:
    """Parse and check one file: every key known, every value of the right type."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")   # a BOM, as Windows editors write: no TOML
        doc = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_toml_message(path, str(e))) from e
    out: dict[tuple[str, str], Any] = {}
    for name, value in doc.items():
        if name in SCHEMA and name and isinstance(value, dict):
            for key, inner in value.items():
                out[(name, key)] = _check(path, text, name, key, inner)
        else:
            out[("", name)] = _check(path, text, "", name, value)
    return out


def _toml(value: Any) -> str:
    """A value as the file spelled it (`true`, not Python's `True`)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _check(path: str, text: str, section: str, key: str, value: Any) -> Any:
    where = f"{path}:{line_of(text, section, key)}" if line_of(text, section, key) else path
    label = f"{section}.{key}" if section else key
    check = SCHEMA[section].get(key)
    if check is None:
        known = ", ".join(sorted(SCHEMA[section]) + ([] if section else ["[rake-worker]", "[rake-broker]"]))
        raise ConfigError(f"{where}: unknown key '{label}' (known: {known})")
    problem = check(value)
    if problem:
        raise ConfigError(f"{where}: '{label}' {problem}, got {_toml(value)}")
    return value


_AT = re.compile(r"^(?P<msg>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def _toml_message(path: str, message: str) -> str:
    """tomllib says 'Expected ... (at line 3, column 7)'; we say 'path:3: Expected ... (column 7)'."""
    m = _AT.match(message)
    if not m:
        return f"{path}: {message}"
    return f"{path}:{m['line']}: {m['msg']} (column {m['col']})"


def line_of(text: str, section: str, key: str) -> int | None:
    """Best effort: the line where `key` is set inside `section`, for error messages."""
    current = ""
    assign = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).strip("\"'")
        elif current == section and assign.match(line):
            return number
    return None


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from, for --show-config."""
    name: str
    value: Any
    source: str


def resolve(name: str, flag_value: Any, flag: str, config: Config, section: str, key: str,
            default: Any, env_var: str | None = None, env: dict[str, str] | None = None) -> Setting:
    """Flag, then environment variable, then the configuration files, then the default."""
    env = os.environ if env is None else env
    if flag_value is not None:
        return Setting(name, flag_value, flag)
    if env_var and env.get(env_var):
        return Setting(name, env[env_var], env_var)
    found = config.get(section, key)
    if found is not None:
        return Setting(name, found[0], found[1])
    return Setting(name, default, "default")


def timing_settings(heartbeat: float | None, env: dict[str, str] | None = None) -> list[Setting]:
    """The heartbeat and liveness as every program takes them (protocol/timing.py), for
    --show-config: a `bad-timing` refusal is chased with these. A value a run would refuse
    is a ValueError here too (with os.environ), not shown as if in effect."""
    if env is None:
        Timing.from_env(heartbeat)
    env = os.environ if env is None else env
    return [resolve("heartbeat", heartbeat, "--heartbeat", Config(), "", "heartbeat", 1.0, "RAKE_HEARTBEAT", env),
            resolve("liveness", None, "", Config(), "", "liveness", 3, "RAKE_LIVENESS", env)]


def show(settings: list[Setting], config: Config) -> str:
    """The --show-config text: one `name = value (from SOURCE)` line per setting."""
    lines = [f"# files read: {', '.join(config.files) or 'none'}"]
    for s in settings:
        value = "(unset)" if s.value is None else s.value
        where = "default" if s.source == "default" else f"from {s.source}"
        lines.append(f"{s.name} = {value} ({where})")
    return "\n".join(lines) + "\n"
