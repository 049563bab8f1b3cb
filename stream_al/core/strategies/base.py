"""The contract every query strategy fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_al.core.estimate import AccuracyEstimate, EstimateKind, EstimateScope
from stream_al.core.types import FeatureValue, QueryReason


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to ask the oracle about one sample, and why."""

    query: bool
    reason: QueryReason | None = None
    #: The threshold (or quantile cut) in force when the decision was taken.
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """A sample picked for labeling: its key and the decision that picked it."""

    key: str
    decision: Decision


class QueryPolicy(ABC):
    """Decides, one sample at a time, which samples are sent to the oracle.

    ``offer`` is called once per scored sample, in stream order, with the sample's key
    and its uncertainty in [0, 1]. It returns the samples selected for labeling: for a
    stream policy at most the one just offered; a pool policy may return several of the
    last ``lookback`` samples once its window is full. All state is plain Python and
    pickles; the same seed and the same inputs give the same selections.
    """

    #: How many of the most recent samples a selection may refer to.
    lookback: int = 1

    @abstractmethod
    def offer(
        self, key: str, uncertainty: float, features: Mapping[str, FeatureValue] | None = None
    ) -> list[Selection]:
        """Take one sample's uncertainty (and its features, if known); return the queries now."""

    @abstractmethod
    def recover(self, reason: QueryReason, samples_seen: int) -> None:
        """Count a query that was made, but after the state this policy was restored from.

        ``samples_seen`` is how many samples had been offered when it was made. Only the
        account is restored (what was spent, on what, out of how many samples), so budget
        and warm-up are spent once across restarts; a selector's own window is not.
        """

    @property
    @abstractmethod
    def threshold(self) -> float | None:
        """The uncertainty threshold (or quantile cut) in force now, if the policy has one."""

    @property
    @abstractmethod
    def queries(self) -> int:
        """Total number of samples selected so far."""

    @property
    @abstractmethod
    def queries_by_reason(self) -> dict[str, int]:
        """Samples selected so far, by reason (reasons with none left out)."""

    @property
    @abstractmethod
    def labels_remaining(self) -> int | None:
        """Labels left under the hard cap; None when there is no cap."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for inspection (checkpoint inspect, logs)."""

    def labelled(self, key: str, correct: bool) -> None:  # noqa: B027 (optional hook)
        """Take the outcome of the label of ``key``: was the prediction made then right?"""

    def accuracy_estimate(
        self, kind: EstimateKind | None = None, scope: EstimateScope = "window"
    ) -> AccuracyEstimate:
        """An unbiased estimate of the accuracy of all predictions; none by default."""
        return AccuracyEstimate.none()
