"""Estimates of the memory a cached object holds, for ``Cache.stats()``.

A walk over msgspec Structs, tuples, dicts and atoms that sums
``sys.getsizeof`` of every object reached. Objects Python shares anyway
(``None``, booleans, small ints, the empty tuple and string, ``UNSET``) are
not counted, nor is an object reached twice in one walk. Objects shared
between cached entries (a ``User`` both in a member and in a message) are
counted in each, so the figures are an upper bound, good for trends and
per-kind comparisons rather than exact accounting.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = ["deep_size", "sampled_size"]

_SHARED_IDS = frozenset(id(obj) for obj in (None, True, False, (), "", msgspec.UNSET))


def deep_size(obj: Any, _seen: set[int] | None = None) -> int:
    """Bytes held by ``obj`` and everything it references (see module doc)."""
    seen = set() if _seen is None else _seen
    stack = [obj]
    total = 0
    while stack:
        item = stack.pop()
        key = id(item)
        if key in seen or key in _SHARED_IDS:
            continue
        if type(item) is int and -5 <= item <= 256:
            continue
        seen.add(key)
        total += sys.getsizeof(item)
        stack.extend(_children(item))
    return total


def _children(item: Any) -> Iterable[Any]:
    if isinstance(item, msgspec.Struct):
        return [getattr(item, name) for name in item.__struct_fields__]
    if isinstance(item, tuple | list | set | frozenset):
        return item
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    return ()


def sampled_size(items: Iterable[Any], count: int, *, sample: int = 64) -> int:
    """Estimate the bytes of ``count`` items from the first ``sample`` of them."""
    if count <= 0:
        return 0
    taken = 0
    total = 0
    for item in items:
        total += deep_size(item)
        taken += 1
        if taken >= sample:
            break
    if taken == 0:
        return 0
    return total * count // taken
