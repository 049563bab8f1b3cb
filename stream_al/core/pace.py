"""A budget people can keep: labels per hour, and the labelers' backlog followed.

A fixed share of the stream floods the labelers when the stream is fast and starves them
when it is slow. ``LabelPace`` turns ``labels_per_hour`` into the share to spend from the
stream's rate, measured on the samples' own clock (an exponentially decaying count of
samples with a time constant of ``RATE_SECONDS``: a tenfold change is followed within a
few minutes, whatever the rate), and,
with ``target_backlog``, scales it by a factor that follows the labelers' queue: each
reading of the backlog above the target lowers it, below raises it (by the ratio of
target to backlog, at most halving or doubling per reading; an integral controller, so
the queue settles near the target whatever the labelers' real capacity is). The factor
does not grow while the share is at 1 already (no wind-up on a slow stream).

It is pure: the backlog is an input (the service reads it from Kafka, the simulator
from its simulated labelers).

>>> pace = LabelPace(labels_per_hour=360.0, initial_share=0.05)
>>> for second in range(50):
...     pace.observe(float(second))   # one sample a second: 3600 an hour
>>> round(pace.share(), 3)           # 360 of 3600
0.1
>>> pace = LabelPace(None, initial_share=0.1, target_backlog=10)
>>> pace.observe_backlog(43)         # four times the target (plus one): halve
>>> pace.share()
0.05
"""

from __future__ import annotations

import math

#: Time constant of the stream rate's measure (seconds of the samples' clock).
RATE_SECONDS = 120.0
#: The factor that follows the backlog stays within [1 / this, this].
MAX_FACTOR = 16.0
#: The smallest share ever asked (the ledger needs a positive budget).
MIN_SHARE = 1e-6


class LabelPace:
    def __init__(
        self,
        labels_per_hour: float | None,
        initial_share: float,
        target_backlog: int | None = None,
    ) -> None:
        self.labels_per_hour = labels_per_hour
        self.initial_share = initial_share
        self.target_backlog = target_backlog
        self.factor = 1.0
        self.backlog: int | None = None
        self._count = 0.0
        self._first: float | None = None
        self._last = 0.0

    def observe(self, t: float) -> None:
        """Note one sample's time (epoch seconds of the samples' clock)."""
        if self._first is None:
            self._first = self._last = t
        elapsed = max(0.0, t - self._last)  # a sample out of order counts as simultaneous
        self._count = self._count * math.exp(-elapsed / RATE_SECONDS) + 1.0
        self._last = max(self._last, t)

    @property
    def rate(self) -> float | None:
        """Samples per second lately; None until two samples apart in time."""
        if self._first is None or self._last <= self._first or self._count < 2.0:
            return None
        # The decayed count of a steady rate r after time E is r * tau * (1 - exp(-E/tau)),
        # not counting the first sample (it opens the span, as in (n - 1) / span).
        span = RATE_SECONDS * -math.expm1(-(self._last - self._first) / RATE_SECONDS)
        return (self._count - 1.0) / span

    def base_share(self) -> float:
        """The share ``labels_per_hour`` asks for at the measured rate."""
        rate = self.rate
        if self.labels_per_hour is None or rate is None:
            return self.initial_share
        return self.labels_per_hour / 3600.0 / rate

    def share(self) -> float:
        """The share of samples to ask about now, in [MIN_SHARE, 1]."""
        return min(1.0, max(MIN_SHARE, self.base_share() * self.factor))

    def observe_backlog(self, backlog: int) -> None:
        """Take one reading of the labelers' backlog (queries not answered yet)."""
        self.backlog = backlog
        if self.target_backlog is None:
            return
        step = (self.target_backlog + 1.0) / (backlog + 1.0)
        step = min(2.0, max(0.5, step))
        if step > 1.0 and self.base_share() * self.factor >= 1.0:
            return  # asking about every sample already: raising the factor would wind up
        self.factor = min(MAX_FACTOR, max(1.0 / MAX_FACTOR, self.factor * step))
