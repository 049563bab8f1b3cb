"""A budget people can keep: labels per hour, and the labelers' backlog followed.

A fixed share of the stream floods the labelers when the stream is fast and starves them
when it is slow. ``LabelPace`` turns ``labels_per_hour`` into the share to spend from the
stream's rate, measured on the samples' own clock over the last ``window`` samples, and,
with ``target_backlog``, scales it by a factor that follows the labelers' queue: each
reading of the backlog above the target lowers it, below raises it (by the ratio of
target to backlog, at most halving or doubling per reading; an integral controller, so
the queue settles near the target whatever the labelers' real capacity is). The factor
does not grow while the share is at 1 already (no wind-up on a slow stream).

It is pure: the backlog is an input (the service reads it from Kafka, the simulator
from its simulated labelers).

>>> pace = LabelPace(labels_per_hour=360.0, initial_share=0.05, window=100)
>>> for second in range(50):
...     pace.observe(float(second))   # one sample a second: 3600 an hour
>>> round(pace.share(), 3)           # 360 of 3600
0.1
>>> pace = LabelPace(None, initial_share=0.1, window=100, target_backlog=10)
>>> pace.observe_backlog(43)         # four times the target (plus one): halve
>>> pace.share()
0.05
"""

from __future__ import annotations

from collections import deque

#: The factor that follows the backlog stays within [1 / this, this].
MAX_FACTOR = 16.0
#: The smallest share ever asked (the ledger needs a positive budget).
MIN_SHARE = 1e-6


class LabelPace:
    def __init__(
        self,
        labels_per_hour: float | None,
        initial_share: float,
        window: int,
        target_backlog: int | None = None,
    ) -> None:
        self.labels_per_hour = labels_per_hour
        self.initial_share = initial_share
        self.target_backlog = target_backlog
        self.factor = 1.0
        self.backlog: int | None = None
        self._times: deque[float] = deque(maxlen=max(window, 2))

    def observe(self, t: float) -> None:
        """Note one sample's time (epoch seconds of the samples' clock)."""
        self._times.append(t)

    @property
    def rate(self) -> float | None:
        """Samples per second over the window; None until two samples apart in time."""
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else None

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
