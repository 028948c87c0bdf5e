"""The order a /Bulk request's operations run in (bulk.py): Kahn's algorithm.

An operation is ready once every POST whose bulkId it refers to (its own aside: that is a
fault of its own) has run, well or not; of the ready ones the first in request order runs
next, so a job without forward references runs exactly in request order. Each step costs a
heap operation and each reference is looked at once: O(n log n + references), where a rescan
of every pending operation per step cost a hostile 1,000-operation chain seconds of CPU.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


class Order:
    """Which operation (by index) runs next; told :meth:`ran` after each one has run."""

    def __init__(self, references: Sequence[frozenset[str]], declared: Mapping[str, int]) -> None:
        self.waiting_for = [0] * len(references)  # POSTs not yet run, per operation
        self.waiters: dict[int, list[int]] = {}  # POST -> the operations that wait for it
        for index, refs in enumerate(references):
            posts = {declared[ref] for ref in refs if ref in declared} - {index}
            self.waiting_for[index] = len(posts)
            for post in posts:
                self.waiters.setdefault(post, []).append(index)
        # In index order, so already a heap.
        self.ready = [index for index, count in enumerate(self.waiting_for) if count == 0]
        self.steps = 0  # heap pushes and pops, for the tests to see the cost stays linear

    def next(self) -> int | None:
        """The first ready operation in request order; None when none is (all run, or the
        ones left wait, directly or through others, on a cycle)."""
        if not self.ready:
            return None
        self.steps += 1
        return heapq.heappop(self.ready)

    def ran(self, index: int) -> None:
        """``index`` has run (or failed): the operations waiting only for it become ready."""
        for waiter in self.waiters.pop(index, ()):
            self.waiting_for[waiter] -= 1
            if self.waiting_for[waiter] == 0:
                self.steps += 1
                heapq.heappush(self.ready, waiter)

    def stuck(self) -> list[int]:
        """The operations that can never become ready, in request order: each is in a cycle
        of bulkId references or waits for one that is."""
        return [index for index, count in enumerate(self.waiting_for) if count > 0]
