"""Field specs for message dataclasses: turn wire values into checked Python values and back."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from protocol.errors import DecodeError

MAX_ID = 64          # peer ids are hex routing ids; names and hosts are short labels
MAX_TEXT = 4096
MAX_COMMAND = 128 * 1024
MAX_ITEMS = 100_000
U32 = 2**32 - 1
I64 = 2**63 - 1


def _fail(where: str, why: str) -> DecodeError:
    # A map key is a peer's text, of any length: the reason goes into log lines and replies.
    where = where if len(where) <= 120 else where[:117] + "..."
    return DecodeError(f"field {where}: {why}")


class Invalid(Exception):
    """A value broke its spec; `path` grows (".files", "[3]") as it travels out of the
    containers, so no location string is built unless something is wrong."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why, self.path = why, []

    def at(self, segment: str) -> "Invalid":
        self.path.append(segment)
        return self

    def where(self, top: str) -> str:
        return top + "".join(reversed(self.path))


@dataclasses.dataclass(frozen=True)
class Int:
    lo: int = 0
    hi: int = I64

    def load(self, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid(f"expected integer, got {type(v).__name__}")
        if not self.lo <= v <= self.hi:
            raise Invalid(f"{v} out of range {self.lo}..{self.hi}")
        return v

    def dump(self, v: int) -> int:
        return v


@dataclasses.dataclass(frozen=True)
class Float:
    lo: float = 0.0
    hi: float = 1e12

    def load(self, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Invalid(f"expected number, got {type(v).__name__}")
        v = float(v)
        if not math.isfinite(v) or not self.lo <= v <= self.hi:
            raise Invalid(f"{v} not finite or out of range {self.lo}..{self.hi}")
        return v

    def dump(self, v: float) -> float:
        return float(v)


@dataclasses.dataclass(frozen=True)
class Str:
    max_len: int = MAX_TEXT
    empty_ok: bool = True
    nul_ok: bool = True      # False for what becomes an argument of exec(): C strings end at NUL

    def load(self, v: Any) -> str:
        if not isinstance(v, str):
            raise Invalid(f"expected string, got {type(v).__name__}")
        if len(v) > self.max_len:
            raise Invalid(f"string of {len(v)} chars exceeds {self.max_len}")
        if not v and not self.empty_ok:
            raise Invalid("must not be empty")
        if not self.nul_ok and "\0" in v:
            raise Invalid("must not contain a NUL character")
        return v

    def dump(self, v: str) -> str:
        return v


@dataclasses.dataclass(frozen=True)
class FileName(Str):
    """A file's path. POSIX names are bytes: one that is not UTF-8 is held as Python holds it
    (undecodable bytes as surrogates, os.fsdecode) and travels as an array of its byte
    values, since a msgpack string must be UTF-8 (docs/protocol.md)."""

    def load(self, v: Any) -> str:
        if not isinstance(v, list):
            return super().load(v)
        if len(v) > self.max_len or not all(type(b) is int and 0 <= b <= 255 for b in v):
            raise Invalid(f"expected a string, or an array of at most {self.max_len} byte values")
        return super().load(bytes(v).decode("utf-8", "surrogateescape"))

    def dump(self, v: str) -> Any:
        if v.isascii():
            return v
        try:
            v.encode()
            return v
        except UnicodeEncodeError:
            return list(v.encode("utf-8", "surrogateescape"))


@dataclasses.dataclass(frozen=True)
class Bool:
    def load(self, v: Any) -> bool:
        if not isinstance(v, bool):
            raise Invalid(f"expected boolean, got {type(v).__name__}")
        return v

    def dump(self, v: bool) -> bool:
        return v


@dataclasses.dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def load(self, v: Any) -> str:
        if v not in self.options:
            raise Invalid(f"expected one of {', '.join(self.options)}")
        return v

    def dump(self, v: str) -> str:
        return v


@dataclasses.dataclass(frozen=True)
class Maybe:
    inner: Any

    def load(self, v: Any) -> Any:
        return None if v is None else self.inner.load(v)

    def dump(self, v: Any) -> Any:
        return None if v is None else self.inner.dump(v)


@dataclasses.dataclass(frozen=True)
class ListOf:
    item: Any
    max_items: int = MAX_ITEMS

    def load(self, v: Any) -> tuple:
        if not isinstance(v, (list, tuple)):
            raise Invalid(f"expected list, got {type(v).__name__}")
        if len(v) > self.max_items:
            raise Invalid(f"{len(v)} items exceed {self.max_items}")
        load, out = self.item.load, []
        for i, x in enumerate(v):
            try:
                out.append(load(x))
            except Invalid as e:
                raise e.at(f"[{i}]")
        return tuple(out)

    def dump(self, v: tuple) -> list:
        return [self.item.dump(x) for x in v]


@dataclasses.dataclass(frozen=True)
class MapOf:
    key: Any
    value: Any
    max_items: int = MAX_ITEMS

    def load(self, v: Any) -> tuple:
        if not isinstance(v, dict):
            raise Invalid(f"expected map, got {type(v).__name__}")
        if len(v) > self.max_items:
            raise Invalid(f"{len(v)} entries exceed {self.max_items}")
        pairs = []
        for k, x in v.items():
            try:
                pairs.append((self.key.load(k), self.value.load(x)))
            except Invalid as e:
                raise e.at(f".{str(k)[:40]}")
        return tuple(sorted(pairs))  # frozen dataclasses need hashable values

    def dump(self, v: tuple) -> dict:
        return {self.key.dump(k): self.value.dump(x) for k, x in v}


@dataclasses.dataclass(frozen=True)
class Struct:
    cls: type

    def load(self, v: Any) -> Any:
        return _load_fields(self.cls, v)

    def dump(self, v: Any) -> dict:
        return dump_struct(v)


def spec(kind: Any, default: Any = dataclasses.MISSING) -> Any:
    """Declare a dataclass field with its wire spec; a default makes it optional on the wire."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"spec": kind})
    return dataclasses.field(default=default, metadata={"spec": kind})


class _Plan:
    """How one dataclass crosses the wire, worked out once per class (`fields()` is slow).

    `fields`: (name, load, required) per field. `defaults`: the optional fields' defaults.
    `converted`: (name, dump) for the fields whose wire form differs from the value (structs,
    maps); every other value is sent as it is (msgpack packs a tuple as an array)."""

    def __init__(self, cls: type):
        fields = dataclasses.fields(cls)
        self.fields = tuple((f.name, f.metadata["spec"].load, f.default is dataclasses.MISSING) for f in fields)
        self.defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
        self.converted = tuple((f.name, f.metadata["spec"].dump) for f in fields
                               if not _sent_as_is(f.metadata["spec"]))
        self.names = tuple(f.name for f in fields)


def _sent_as_is(kind: Any) -> bool:
    if isinstance(kind, FileName):
        return False
    if isinstance(kind, (Int, Float, Str, Bool, Choice)):
        return True
    if isinstance(kind, (Maybe, ListOf)):
        return _sent_as_is(kind.inner if isinstance(kind, Maybe) else kind.item)
    return False


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
    return plan


_PLANS: dict[type, _Plan] = {}


def _load_fields(cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise Invalid(f"expected map, got {type(raw).__name__}")
    plan = _plan(cls)
    values = dict(plan.defaults)
    for name, load, required in plan.fields:
        if name in raw:
            try:
                values[name] = load(raw[name])
            except Invalid as e:
                raise e.at(f".{name}")
        elif required:
            raise Invalid("missing").at(f".{name}")
    # Every field was just checked, so __init__ would only set each one again through
    # object.__setattr__ (frozen): filling __dict__ directly makes the same object.
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def load_struct(cls: type, raw: Any, where: str) -> Any:
    """Build a `cls` from a decoded msgpack map, checking every field; unknown keys are ignored."""
    try:
        return _load_fields(cls, raw)
    except Invalid as e:
        raise _fail(e.where(where), e.why) from None


def dump_struct(obj: Any) -> dict:
    plan = _plan(type(obj))
    out = {name: getattr(obj, name) for name in plan.names}
    for name, dump in plan.converted:
        out[name] = dump(out[name])
    return out
