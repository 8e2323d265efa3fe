"""A name -> entry table kept in registration order: the frontend and backend registries."""

from __future__ import annotations

import os
import threading
from typing import Callable, Generic, Iterable, TypeVar

from .errors import TorchMDFError

T = TypeVar("T")


def normalize_suffixes(suffixes: Iterable[str]) -> tuple[str, ...]:
    """``["onnx", ".JSON"]`` -> ``(".onnx", ".json")``."""
    return tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in suffixes)


class NamedRegistry(Generic[T]):
    """Entries with a ``name`` and ``suffixes``; lookups by suffix prefer the newest entry, so a
    user's registration wins over a built-in one."""

    def __init__(self, kind: str, error: type[TorchMDFError] = TorchMDFError):
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}
        self._lock = threading.Lock()

    def add(self, entry: T, *, replace: bool = False) -> T:
        name = entry.name  # type: ignore[attr-defined]
        with self._lock:
            if name in self._entries and not replace:
                raise self.error(f"{self.kind} {name!r} is already registered", hint="pass replace=True")
            self._entries.pop(name, None)  # a replaced entry counts as the newest
            self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def all(self) -> dict[str, T]:
        return dict(self._entries)

    def newest_first(self) -> list[T]:
        return list(reversed(self._entries.values()))

    def for_path(self, path: str | os.PathLike, usable: Callable[[T], bool] = lambda e: True) -> T | None:
        name = os.fspath(path).lower()
        for e in self.newest_first():
            if usable(e) and any(name.endswith(s) for s in e.suffixes):  # type: ignore[attr-defined]
                return e
        return None

    def known_suffixes(self, usable: Callable[[T], bool] = lambda e: True) -> str:
        return ", ".join(f"{s} ({e.name})" for e in self._entries.values() if usable(e)  # type: ignore[attr-defined]
                         for s in e.suffixes)  # type: ignore[attr-defined]
