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
    return DecodeError(f"field {where}: {why}")


@dataclasses.dataclass(frozen=True)
class Int:
    lo: int = 0
    hi: int = I64

    def load(self, v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(where, f"expected integer, got {type(v).__name__}")
        if not self.lo <= v <= self.hi:
            raise _fail(where, f"{v} out of range {self.lo}..{self.hi}")
        return v

    def dump(self, v: int) -> int:
        return v


@dataclasses.dataclass(frozen=True)
class Float:
    lo: float = 0.0
    hi: float = 1e12

    def load(self, v: Any, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(where, f"expected number, got {type(v).__name__}")
        v = float(v)
        if not math.isfinite(v) or not self.lo <= v <= self.hi:
            raise _fail(where, f"{v} not finite or out of range {self.lo}..{self.hi}")
        return v

    def dump(self, v: float) -> float:
        return float(v)


@dataclasses.dataclass(frozen=True)
class Str:
    max_len: int = MAX_TEXT
    empty_ok: bool = True

    def load(self, v: Any, where: str) -> str:
        if not isinstance(v, str):
            raise _fail(where, f"expected string, got {type(v).__name__}")
        if len(v) > self.max_len:
            raise _fail(where, f"string of {len(v)} chars exceeds {self.max_len}")
        if not v and not self.empty_ok:
            raise _fail(where, "must not be empty")
        return v

    def dump(self, v: str) -> str:
        return v


@dataclasses.dataclass(frozen=True)
class Bool:
    def load(self, v: Any, where: str) -> bool:
        if not isinstance(v, bool):
            raise _fail(where, f"expected boolean, got {type(v).__name__}")
        return v

    def dump(self, v: bool) -> bool:
        return v


@dataclasses.dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def load(self, v: Any, where: str) -> str:
        if v not in self.options:
            raise _fail(where, f"expected one of {', '.join(self.options)}")
        return v

    def dump(self, v: str) -> str:
        return v


@dataclasses.dataclass(frozen=True)
class Maybe:
    inner: Any

    def load(self, v: Any, where: str) -> Any:
        return None if v is None else self.inner.load(v, where)

    def dump(self, v: Any) -> Any:
        return None if v is None else self.inner.dump(v)


@dataclasses.dataclass(frozen=True)
class ListOf:
    item: Any
    max_items: int = MAX_ITEMS

    def load(self, v: Any, where: str) -> tuple:
        if not isinstance(v, (list, tuple)):
            raise _fail(where, f"expected list, got {type(v).__name__}")
        if len(v) > self.max_items:
            raise _fail(where, f"{len(v)} items exceed {self.max_items}")
        return tuple(self.item.load(x, f"{where}[{i}]") for i, x in enumerate(v))

    def dump(self, v: tuple) -> list:
        return [self.item.dump(x) for x in v]


@dataclasses.dataclass(frozen=True)
class MapOf:
    key: Any
    value: Any
    max_items: int = MAX_ITEMS

    def load(self, v: Any, where: str) -> tuple:
        if not isinstance(v, dict):
            raise _fail(where, f"expected map, got {type(v).__name__}")
        if len(v) > self.max_items:
            raise _fail(where, f"{len(v)} entries exceed {self.max_items}")
        pairs = ((self.key.load(k, where), self.value.load(x, f"{where}.{k}")) for k, x in v.items())
        return tuple(sorted(pairs))  # frozen dataclasses need hashable values

    def dump(self, v: tuple) -> dict:
        return {self.key.dump(k): self.value.dump(x) for k, x in v}


@dataclasses.dataclass(frozen=True)
class Struct:
    cls: type

    def load(self, v: Any, where: str) -> Any:
        return load_struct(self.cls, v, where)

    def dump(self, v: Any) -> dict:
        return dump_struct(v)


def spec(kind: Any, default: Any = dataclasses.MISSING) -> Any:
    """Declare a dataclass field with its wire spec; a default makes it optional on the wire."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"spec": kind})
    return dataclasses.field(default=default, metadata={"spec": kind})


def load_struct(cls: type, raw: Any, where: str) -> Any:
    """Build a `cls` from a decoded msgpack map, checking every field; unknown keys are ignored."""
    if not isinstance(raw, dict):
        raise _fail(where, f"expected map, got {type(raw).__name__}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            values[f.name] = f.metadata["spec"].load(raw[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING:
            raise _fail(f"{where}.{f.name}", "missing")
    return cls(**values)


def dump_struct(obj: Any) -> dict:
    return {f.name: f.metadata["spec"].dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
