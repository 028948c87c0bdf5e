"""Answers a worker keeps for a short while, so that a directory sync's burst of requests does
not ask the database the same question in each.

Each answer is kept for at most ``recheck`` (the site's ``session_recheck_seconds``, the bound a
session's cached check has too): a change made in another process reaches this worker within
that time, and 0 asks every time. A change made in this process calls :meth:`Remembered.forget`,
which drops everything at once. Memory is bounded: beyond ``max_entries`` the least recently
used answer goes first.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _always(_answer: object) -> bool:
    return True


class Remembered(Generic[K, V]):
    def __init__(self, *, recheck: dt.timedelta, max_entries: int) -> None:
        self.recheck_seconds = recheck.total_seconds()
        self.max_entries = max_entries
        self._answers: collections.OrderedDict[K, tuple[float, V]] = collections.OrderedDict()
        self._lock = threading.Lock()
        # Counts forget()s: a look-up that began before one may have read what the change
        # replaced, and is not kept (its own request is answered as it read).
        self._generation = 0

    def get(self, key: K, look_up: Callable[[], V], *, keep: Callable[[V], bool] = _always) -> V:
        """The answer for ``key``: remembered if found less than ``recheck`` ago, else from
        ``look_up()``, which is then remembered when ``keep`` says so."""
        if self.recheck_seconds <= 0:
            return look_up()
        now = time.monotonic()
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                if found[0] > now:
                    self._answers.move_to_end(key)
                    return found[1]
                del self._answers[key]
            generation = self._generation
        answer = look_up()
        if keep(answer):
            with self._lock:
                if generation == self._generation:  # else a change committed meanwhile
                    self._answers[key] = (now + self.recheck_seconds, answer)
                    self._answers.move_to_end(key)
                    while len(self._answers) > self.max_entries:
                        self._answers.popitem(last=False)
        return answer

    def forget(self) -> None:
        """Drop every answer (for a change made in this process)."""
        with self._lock:
            self._answers.clear()
            self._generation += 1

    def __len__(self) -> int:
        return len(self._answers)
