"""Pool mode: rank a window of buffered samples and label the top of it."""

from __future__ import annotations

from typing import Any

from stream_al.core.strategies.base import Decision, Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector, derive_rng


class PoolSelector(Selector):
    """Buffer ``W`` samples, then query the most uncertain ``k`` of them.

    ``k`` is the ledger's deficit rounded half up, ``floor(B n - q + 1/2)``, so without
    warm-up and exploration it is ``B W`` per window with the fractional remainder carried
    to the next (the long-run rate is exactly ``B``), and labels spent by warm-up and
    exploration are deducted. Samples the wrapper already took are not ranked again.
    With ``sub_pool_size`` set, the top ``k`` are chosen from a random sub-pool of that
    many samples of the window: a smaller pool holds fewer of the extreme outliers that
    pure uncertainty ranking favours. Windows do not overlap; ``lookback = W``.
    """

    name = "pool"

    def __init__(
        self, pool_size: int = 100, sub_pool_size: int | None = None, seed: int = 42
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        if sub_pool_size is not None and not 1 <= sub_pool_size <= pool_size:
            raise ValueError(f"sub_pool_size must be in [1, pool_size], got {sub_pool_size}")
        self.pool_size = pool_size
        self.sub_pool_size = sub_pool_size
        self.lookback = pool_size
        self._rng = derive_rng(seed, self.name)
        self._buffer: list[tuple[str, float, bool]] = []
        self._cut: float | None = None

    @property
    def threshold(self) -> float | None:
        """The uncertainty of the last sample picked from the last full window."""
        return self._cut

    def offer(self, key: str, uncertainty: float, taken: bool, ledger: Ledger) -> list[Selection]:
        self._buffer.append((key, uncertainty, taken))
        if len(self._buffer) < self.pool_size:
            return []
        buffer, self._buffer = self._buffer, []
        candidates = [(k, u) for k, u, t in buffer if not t]
        if self.sub_pool_size is not None and self.sub_pool_size < len(candidates):
            candidates = self._rng.sample(candidates, self.sub_pool_size)
        wanted = int(ledger.deficit + 0.5) if ledger.selectable else 0
        remaining = ledger.remaining
        if remaining is not None:
            wanted = min(wanted, remaining)
        if wanted <= 0 or not candidates:
            return []
        # Stable sort on uncertainty alone: ties go to the earlier sample.
        top = sorted(candidates, key=lambda c: c[1], reverse=True)[:wanted]
        self._cut = top[-1][1]
        return [Selection(k, Decision(True, "uncertain", self._cut)) for k, _ in top]

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self._cut,
            "buffered": len(self._buffer),
            "pool_size": self.pool_size,
            "sub_pool_size": self.sub_pool_size,
        }
