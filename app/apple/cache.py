"""A bounded cache of Apple's clients and verifiers: one per app and environment, at most `size`
of them, the least recently used dropped first. A key keeps one version of its value (the app's
settings as of their last change): asked for with another version, the value is made again and the
old one dropped. What is dropped goes to `retire` (a client's HTTP pool is closed there)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class VersionedLru(Generic[K, V]):
    def __init__(self, size: int, retire: Callable[[V], None] | None = None) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._retire = retire
        self._entries: OrderedDict[K, tuple[Hashable, V]] = OrderedDict()

    def get(self, key: K, version: Hashable, make: Callable[[], V]) -> V:
        """The value of `key` at `version`, made (and kept) when it is not there yet."""
        found = self._entries.get(key)
        if found is not None and found[0] == version:
            self._entries.move_to_end(key)
            return found[1]
        value = make()
        if found is not None:
            self._drop(found[1])
        self._entries[key] = (version, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            _, (_, oldest) = self._entries.popitem(last=False)
            self._drop(oldest)
        return value

    def _drop(self, value: V) -> None:
        if self._retire is not None:
            self._retire(value)

    def values(self) -> Iterator[V]:
        return (value for _, value in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
