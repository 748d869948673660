"""The simulator's clock queue: which timer fires next, without rescanning every call on every step.

A timed object (an inbound call, an outbound call, a consultation) lists its own pending timers
with one function that reads its state, in the order they win a tie: that function stays the
truth. The heap only remembers when to look: the object's owner pushes the listed times whenever
the object may have gained a timer, and an entry that reaches the top is checked against the
function again, so a timer the object has lost since (answered, hung up, call gone) is dropped
there (lazy invalidation). Ties go to the lower rank: the group (inbound calls, outbound calls,
spies, consultations), then the object's creation order (the order of its owner's dict).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Protocol

from callcard.pbx_sim.messages import Message

# timer groups, in the order a clock tie resolves: inbound calls first, consultations last
INBOUND, OUTBOUND, SPIES, CONSULTS = range(4)

Step = Callable[[float], list[Message]]
Timer = tuple[float, Step]
Rank = tuple[int, int]
Entry = tuple[float, Rank, int, Callable[[], list[Timer]]]
MIN_COMPACT = 4096  # stale entries are swept out once the heap is twice its last live size, and this big


class Ranked(Protocol):
    rank: int


class TimerHeap:
    """Pending timers of many objects, earliest first."""

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._pushed = itertools.count()  # keeps entries of one rank and time from comparing functions
        self._created = itertools.count()
        self._compact_at = MIN_COMPACT

    def new_rank(self) -> int:
        """The creation rank of a new timed object: on a tie the older object's timer fires first."""
        return next(self._created)

    def rank_in_place_of(self, replaced: Ranked | None) -> int:
        """The rank of a new timed object: that of the one it replaces under the same key (a reused
        ChannelId keeps the old call's place in ties), else a new one."""
        return replaced.rank if replaced is not None else self.new_rank()

    def watch(self, rank: Rank, timers: Callable[[], list[Timer]]) -> None:
        """Push the object's current timers: call it whenever the object may have gained one."""
        for when, _ in timers():
            heapq.heappush(self._heap, (when, rank, next(self._pushed), timers))
        if len(self._heap) > self._compact_at:
            self._compact()

    def first(self) -> tuple[float, Rank, Step] | None:
        """The earliest live timer with its rank; within one object the first it lists at that time."""
        heap = self._heap
        while heap:
            when, rank, _, timers = heap[0]
            for at, step in timers():
                if at == when:
                    return when, rank, step
            heapq.heappop(heap)
        return None

    def _compact(self) -> None:
        """Drop stale entries before their time comes: a call that ended an hour before its
        patience ran out would otherwise stay in memory until then."""
        self._heap = [entry for entry in self._heap if any(at == entry[0] for at, _ in entry[3]())]
        heapq.heapify(self._heap)
        self._compact_at = max(MIN_COMPACT, 2 * len(self._heap))
