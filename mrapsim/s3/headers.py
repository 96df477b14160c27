"""A request's header fields as received, read one way by everything that reads them.

A field may repeat. RFC 9110 §5.3 lets a recipient combine the repeats into one value, joined by
commas in arrival order, without changing the message's meaning; SigV4 canonicalises repeats the
same way (values joined by ","). So `get(name)` and `headers[name]` give that combined value,
whoever asks (auth, addressing, routing, handlers), and `get_all(name)` the separate values.
Names are case-insensitive (RFC 9110 §5.1): they are stored lower-case and looked up lower-cased.

Costs: one pass over the fields at construction builds the index; a lookup is a dict lookup plus
a join of that name's values, so reading every field stays linear in the header bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, overload

T = TypeVar("T")


@dataclass(frozen=True)
class Headers(Mapping[str, str]):
    """Immutable, case-insensitive header fields; a `Mapping` whose values join repeats with ","."""

    fields: tuple[tuple[str, str], ...] = ()  # names lower-case, in arrival order
    _values: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = tuple((name.lower(), value) for name, value in self.fields)
        values: dict[str, list[str]] = {}
        for name, value in fields:
            values.setdefault(name, []).append(value)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "_values", {name: tuple(found) for name, found in values.items()})

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Fields as the server hands them over (bytes pairs, as ASGI's `scope["headers"]`)."""
        return cls(tuple((_text(name), _text(value)) for name, value in raw))

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of `name`, in arrival order; () when absent."""
        return self._values.get(name.lower(), ())

    def __getitem__(self, name: str) -> str:
        return ",".join(self._values[name.lower()])

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str | T) -> str | T: ...

    def get(self, name: str, default: object = None) -> object:
        # Mapping.get goes through __getitem__ and a KeyError for every absent name; a request
        # asks ~15 times (auth, addressing, routing, handlers).
        found = self._values.get(name.lower())
        return default if found is None else ",".join(found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 when they are (that is what clients sign), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
