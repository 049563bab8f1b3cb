"""Means and paired differences over policy seeds, with their standard errors."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean and its standard error (0 for a single value).

    >>> mean_se([1.0, 3.0])
    (2.0, 1.0)
    """
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return statistics.fmean(values), se


def paired_difference(after: Sequence[float], before: Sequence[float]) -> tuple[float, float]:
    """Mean of ``after - before`` seed by seed, and its standard error: what the seeds share
    cancels, so a change shows at fewer seeds than two separate means need."""
    return mean_se([a - b for a, b in zip(after, before, strict=True)])
