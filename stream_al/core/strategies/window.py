"""A sliding window of the last ``w`` values with exact order statistics."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque


class SlidingWindow:
    """The last ``size`` values, kept both in arrival order and sorted.

    Insertion and eviction cost a binary search plus a list shift (``O(w)`` memmove,
    about a microsecond for ``w`` in the thousands); quantiles and ranks are then
    ``O(1)`` and ``O(log w)``. The state is two plain lists, so it pickles.
    """

    __slots__ = ("_order", "_sorted", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, value: float) -> None:
        """Append ``value``, evicting the oldest once the window is full."""
        if len(self._order) == self.size:
            old = self._order.popleft()
            del self._sorted[bisect_left(self._sorted, old)]
        self._order.append(value)
        insort(self._sorted, value)

    def add_ranked(self, value: float, after: int, limit: int) -> None:
        """``add(value)`` then ``trim(limit)``, given ``after``, the number of values ``<=
        value`` now (``sum(count_below(value))``): the caller ranked it already, so its
        place is known without a second search.

        >>> window = SlidingWindow(3)
        >>> for v in [0.5, 0.1, 0.9, 0.5]:
        ...     window.add_ranked(v, sum(window.count_below(v)), limit=3)
        >>> window.values(), window.quantile(0.5)
        ([0.1, 0.9, 0.5], 0.5)
        """
        order, ranked = self._order, self._sorted
        if len(order) == self.size:
            # The oldest goes first, as in ``add``; if it was at or below ``value`` the
            # place of ``value`` moves down one (the same place ``insort`` would find).
            at = bisect_left(ranked, order.popleft())
            del ranked[at]
            if at < after:
                after -= 1
        order.append(value)
        ranked.insert(after, value)
        while len(order) > limit:
            del ranked[bisect_left(ranked, order.popleft())]

    def trim(self, limit: int) -> None:
        """Evict the oldest values until at most ``limit`` (>= 0) remain."""
        while len(self._order) > limit:
            old = self._order.popleft()
            del self._sorted[bisect_left(self._sorted, old)]

    def quantile(self, level: float) -> float:
        """The ``level`` quantile, interpolated linearly between order statistics.

        This is NumPy's default ("linear") definition: position ``(n - 1) * level`` in the
        sorted values.
        """
        if not self._sorted:
            raise ValueError("quantile of an empty window")
        level = min(1.0, max(0.0, level))
        pos = (len(self._sorted) - 1) * level
        lo = math.floor(pos)
        hi = min(lo + 1, len(self._sorted) - 1)
        frac = pos - lo
        return self._sorted[lo] + (self._sorted[hi] - self._sorted[lo]) * frac

    def count_below(self, value: float) -> tuple[int, int]:
        """How many values are strictly below ``value``, and how many equal it."""
        below = bisect_left(self._sorted, value)
        return below, bisect_right(self._sorted, value) - below

    @property
    def low(self) -> float:
        return self._sorted[0]

    @property
    def high(self) -> float:
        return self._sorted[-1]

    def values(self) -> list[float]:
        """The values in arrival order (oldest first)."""
        return list(self._order)
