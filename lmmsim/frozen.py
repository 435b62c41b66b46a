"""One immutable mapping type for the frozen dataclasses (designs, truths, model specs).

:class:`FrozenMap` is a read-only view of a private dict that pickles itself (process
pools and dask copy designs), so no global ``copyreg`` registration is needed.

>>> from lmmsim.frozen import FrozenMap
>>> m = FrozenMap({"a": 1.0})
>>> m["a"], dict(m), m == {"a": 1.0}
(1.0, {'a': 1.0}, True)
>>> import pickle
>>> pickle.loads(pickle.dumps(m)) == m
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class FrozenMap(Mapping):
    """A read-only mapping; equal to any mapping with the same items."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping | None = None) -> None:
        object.__setattr__(self, "_items", dict(items or {}))

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def __reduce__(self):
        return (type(self), (self._items,))


def freeze(value: Any) -> Any:
    """``value`` with every mapping made a :class:`FrozenMap` (keys as str) and every list a
    tuple, recursively."""
    if isinstance(value, Mapping):
        return FrozenMap({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain dicts and lists (for JSON)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
