"""The query policy every strategy runs in: warm-up, exploration, hard cap, one ledger."""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from stream_al.core.drift import DriftSignal, DriftWatch
from stream_al.core.estimate import (
    AccuracyEstimate,
    AccuracyMonitor,
    Asked,
    EstimateKind,
    EstimateScope,
)
from stream_al.core.strategies.base import Decision, QueryPolicy, Selection
from stream_al.core.strategies.ledger import Ledger
from stream_al.core.strategies.selector import Selector, check_uncertainty, derive_rng
from stream_al.core.strategies.stopping import EventKind, PolicyEvent, StoppingRules, describe
from stream_al.core.types import FeatureValue, QueryReason

log = logging.getLogger(__name__)


class BudgetedPolicy(QueryPolicy):
    """Runs a :class:`Selector` within a budget, with warm-up, exploration and a cap.

    For each offered sample, in this order:

    1. *Warm-up*: the first ``warmup`` samples are queried (reason ``"warm-up"``) and the
       selector only watches. A cold model has no useful uncertainty (it may even be sure
       of everything after one label), so the first labels come from the stream, not
       from the model. They are charged to the ledger like any other label and repaid
       from the budget of the following ``warmup / B`` samples; only a stream shorter
       than that ends over budget, by at most ``warmup`` labels.
    2. *Exploration*: afterwards each sample is queried at random with probability
       ``exploration * B`` (reason ``"exploration"``), so a share ``exploration`` of all
       queries lands where the model is sure, which is where drift hides.
    3. The selector decides (reason ``"uncertain"``). It sees every sample, and the
       labels spent in 1 and 2 are in the ledger it reads, so the whole policy spends
       ``B`` over the long run.

    The hard cap ``max_labels`` is never exceeded: once reached nothing is queried.

    Every query is remembered with the probability that it would be asked (see
    :class:`~stream_al.core.estimate.Asked`); :meth:`labelled` takes each label's outcome
    and feeds the unbiased accuracy estimates (``monitor``). Two optional reactions use
    them, both off by default:

    * *Stopping* (``stopping``): once the estimate's lower bound reaches the target, or
      the estimate is on a plateau, the selector is paused and only random labels are
      asked, at ``monitoring_rate``; the budget not spent is ``ledger.saved``. It resumes
      when the estimate falls (see :mod:`~stream_al.core.strategies.stopping`).
    * *Drift response* (``drift``): when a detector sees the labels' error rate (all of
      them, or the random ones) or the uncertainty rise, exploration is raised to
      ``drift_exploration`` for ``drift_duration`` samples (the labels still come out of
      the same budget), the selector's window is restarted (``drift_restart``), a stopped
      policy resumes and may not stop again until the estimate's window holds only
      post-drift samples, and ``model_reset_requested`` is set when ``drift_reset_model``
      is on (the learner then rebuilds its model before its next label).
    """

    def __init__(
        self,
        selector: Selector,
        budget: float,
        *,
        exploration: float = 0.0,
        warmup: int = 0,
        max_labels: int | None = None,
        seed: int = 42,
        estimate_window: int = 5000,
        estimate_confidence: float = 0.95,
        estimate: EstimateKind = "random",
        stopping: StoppingRules | None = None,
        monitoring_rate: float | None = None,
        drift: DriftWatch | None = None,
        drift_exploration: float = 0.5,
        drift_duration: int = 2000,
        drift_restart: bool = True,
        drift_reset_model: bool = False,
    ) -> None:
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.selector = selector
        #: Whether the selector looks at features (the base ``observe`` is a no-op whose
        #: call is not worth making per sample).
        self._observes = type(selector).observe is not Selector.observe
        #: Likewise for ``observe_model``, which the learner calls (when this is true).
        self._observes_model = type(selector).observe_model is not Selector.observe_model
        self.ledger = Ledger(budget=budget, exploration=exploration, max_labels=max_labels)
        self.warmup = warmup
        self.lookback = selector.lookback
        self._rng = derive_rng(seed, "budgeted")
        self.monitor = AccuracyMonitor(estimate_window, estimate_confidence)
        self.estimate_kind: EstimateKind = estimate
        self.stopping = stopping
        rate = exploration * budget if monitoring_rate is None else monitoring_rate
        if not 0.0 <= rate <= budget:
            raise ValueError(f"monitoring rate must be in [0, budget], got {rate}")
        self.monitoring_rate = rate
        self.drift = drift
        self.base_exploration = exploration
        self.drift_exploration = drift_exploration
        self.drift_duration = drift_duration
        self.drift_restart = drift_restart
        self.drift_reset_model = drift_reset_model
        self.boost_until = 0
        self.model_reset_requested = False
        self.events: deque[PolicyEvent] = deque(maxlen=100)
        self.event_counts: Counter[str] = Counter()
        self.drifts_by_signal: Counter[str] = Counter()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A policy pickled before ``_observes`` (or ``_observes_model``) existed: work it out.
        self.__dict__.update(state)
        if "_observes" not in state:
            self._observes = type(self.selector).observe is not Selector.observe
        if "_observes_model" not in state:
            selector = type(self.selector)
            self._observes_model = selector.observe_model is not Selector.observe_model

    @property
    def in_warmup(self) -> bool:
        """Whether warm-up labels are still being collected."""
        return self.ledger.by_reason["warm-up"] < self.warmup

    def _wrapper_reason(self) -> QueryReason | None:
        """The wrapper's own decision on the current sample, if it queries it."""
        if self.in_warmup:
            return "warm-up"
        # Draw on every sample after warm-up so the draws do not depend on the selector.
        if self._rng.random() < self.exploration_rate:
            return "exploration"
        return None

    @property
    def exploration_rate(self) -> float:
        """The probability that a sample after warm-up is drawn for exploration now."""
        if self.ledger.paused:
            return self.monitoring_rate
        return self.ledger.exploration * self.ledger.budget

    @property
    def stopped(self) -> bool:
        """Whether a stopping rule holds: only random labels, at the monitoring rate."""
        return self.ledger.paused

    def offer(
        self, key: str, uncertainty: float, features: Mapping[str, FeatureValue] | None = None
    ) -> list[Selection]:
        # Called once per sample: ``in_warmup``, ``exploration_rate``, ``_wrapper_reason``
        # and the ledger's ``can_query`` are inlined here (the same tests in the same
        # order, so the same draws); the readable forms above stay the reference.
        if not 0.0 <= uncertainty <= 1.0:
            check_uncertainty(uncertainty)  # raises, naming the value
        uncertainty = float(uncertainty)
        ledger = self.ledger
        ledger.seen += 1
        paused = ledger.paused
        if paused:
            # The budget of this sample beyond the monitoring labels is saved, not owed.
            ledger.saved += ledger.budget - self.monitoring_rate
        warmup = ledger.by_reason["warm-up"] < self.warmup
        ledger.held = warmup
        if self.boost_until and ledger.seen > self.boost_until:
            self.boost_until = 0
            ledger.exploration = self.base_exploration
        max_labels = ledger.max_labels
        can_query = max_labels is None or max_labels - ledger.queried > 0
        rate = self.monitoring_rate if paused else ledger.exploration * ledger.budget
        q = rate if can_query and not warmup else 0.0
        selector = self.selector
        selections: list[Selection] = []
        reason: QueryReason | None = None
        if can_query:
            if warmup:
                reason = "warm-up"
            # Draw on every sample after warm-up so the draws do not depend on the selector.
            elif self._rng.random() < rate:
                reason = "exploration"
            if reason is not None:
                ledger.record(reason)
                selections.append(Selection(key, Decision(True, reason, selector.threshold)))
        if features is not None and self._observes:
            selector.observe(features)
        for picked in selector.offer(key, uncertainty, reason is not None, ledger):
            if not ledger.can_query:  # a selector that ignores the cap cannot break it
                break
            assert picked.decision.reason is not None
            ledger.record(picked.decision.reason)
            selections.append(picked)
        ledger.held = False
        if selections:
            self._remember(selections, key, warmup, q)
        if self.drift is not None and self.drift.uncertainty(uncertainty):
            self._drifted("uncertainty")
        return selections

    def take_over(self, previous: BudgetedPolicy) -> None:
        """Continue the account of ``previous`` (a restored policy of another configuration).

        Samples seen, labels asked (so warm-up and the hard cap count what was spent), and
        the accuracy monitor carry over; this policy's budget applies from now on. The
        selector starts afresh: its thresholds belong to its own settings.
        """
        ledger = previous.ledger
        ledger.rebudget(self.ledger.budget, self.ledger.exploration, self.ledger.max_labels)
        self.ledger = ledger
        self.base_exploration = ledger.exploration
        self.monitor = previous.monitor

    def recover(self, reason: QueryReason, samples_seen: int, key: str | None = None) -> None:
        """Count a query made after the state restored; with ``key``, await its label too.

        The query's probability was not logged, so the monitor gets what is known: 1 for
        warm-up, today's exploration rate for an exploration draw (the random estimate
        takes both), unknown otherwise (the weighted estimate leaves the label out).
        """
        self.ledger.recover(reason, samples_seen)
        if key is None:
            return
        random_probability: float | None = None
        if reason == "warm-up":
            random_probability = 1.0
        elif reason == "exploration" and self.exploration_rate > 0.0:
            random_probability = self.exploration_rate
        probability = 1.0 if reason == "warm-up" else None
        asked = Asked(samples_seen, reason, probability, random_probability, recovered=True)
        self.monitor.asked(key, asked)

    def set_budget(self, budget: float) -> None:
        """Spend ``budget`` (a share) from the next sample on (see :mod:`stream_al.core.pace`)."""
        self.ledger.set_budget(budget)

    def _remember(self, selections: list[Selection], key: str, warmup: bool, q: float) -> None:
        """Note each query's probability of being asked, for the accuracy estimates."""
        if not selections:
            return
        position = self.ledger.seen
        p_pick = self.selector.selection_probability()
        for selection in selections:
            reason = selection.decision.reason
            assert reason is not None
            if warmup:
                probability: float | None = 1.0
                random_probability: float | None = 1.0
            elif selection.key != key:  # a pool's pick from its buffer: unknown
                probability = random_probability = None
            else:
                probability = None if p_pick is None else q + (1.0 - q) * p_pick
                random_probability = None
                if reason == "exploration":
                    # In the random sample by the wrapper's draw or, failing that, by one of
                    # the selector's own that ignores the model (random sampling, split, an
                    # ALBL random arm).
                    own = self.selector.random_pick_probability()
                    random_probability = q + (1.0 - q) * own
                    if random_probability <= 0.0:  # a selector that does not say: unknown
                        random_probability = None
            self.monitor.asked(
                selection.key, Asked(position, reason, probability, random_probability)
            )

    # -- labels, estimates, stopping and drift ------------------------------------------

    def labelled(self, key: str, correct: bool) -> None:
        self.selector.answered(key)
        self.selector.judged(key, correct)
        outcome = self.monitor.labelled(key, correct)
        if outcome is None:
            return
        random = outcome.asked.random_probability is not None
        if self.drift is not None and self.drift.error(not correct, random):
            self._drifted("errors")
        if self.stopping is not None:
            estimate = self.accuracy_estimate(self.estimate_kind)
            change = self.stopping.update(estimate, self.ledger.seen)
            if change is not None:
                self._set_paused(change == "stopped")
                rules = f"; holding: {self.stopping.holding}" if change == "stopped" else ""
                self._event(change, f"accuracy estimate {describe(estimate)}{rules}")

    def accuracy_estimate(
        self, kind: EstimateKind | None = None, scope: EstimateScope = "window"
    ) -> AccuracyEstimate:
        """The unbiased accuracy estimate of ``kind`` (the configured one by default)."""
        kind = self.estimate_kind if kind is None else kind
        return self.monitor.estimate(kind, self.ledger.seen, scope)

    def _set_paused(self, paused: bool) -> None:
        self.ledger.paused = paused

    def _drifted(self, signal: DriftSignal) -> None:
        ledger = self.ledger
        self.drifts_by_signal[signal] += 1
        actions = []
        if self.drift_duration > 0 and self.drift_exploration > self.base_exploration:
            self.boost_until = ledger.seen + self.drift_duration
            ledger.exploration = self.drift_exploration
            actions.append(f"exploration {self.drift_exploration} until {self.boost_until}")
        if self.drift_restart:
            self.selector.restart()
            actions.append("selector window restarted")
        if self.drift_reset_model:
            self.model_reset_requested = True
            actions.append("fresh model")
        self._event("drift", f"{signal} rose; " + ", ".join(actions or ["no action"]))
        if self.stopping is not None:
            hold = ledger.seen + self.monitor.window
            if self.stopping.resume(hold):
                self._set_paused(False)
                self._event("resumed", f"drift; no stopping before sample {hold}")

    def model_changed(self, replaced: bool) -> None:
        """The learner's model learned a label, or was replaced (see ``Selector``)."""
        self.selector.model_changed(replaced)

    def model_duel_over(self, replaced: bool, detail: str) -> None:
        """The fresh model after a drift replaced the current one, or was dropped."""
        self._event("model-replaced" if replaced else "model-kept", detail)

    def _event(self, kind: EventKind, detail: str) -> None:
        event = PolicyEvent(self.ledger.seen, kind, detail)
        self.events.append(event)
        self.event_counts[kind] += 1
        log.info("query policy %s at sample %d: %s", kind, event.position, detail)

    @property
    def threshold(self) -> float | None:
        return self.selector.threshold

    @property
    def queries(self) -> int:
        return self.ledger.queried

    @property
    def queries_by_reason(self) -> dict[str, int]:
        return {reason: n for reason, n in self.ledger.by_reason.items() if n}

    @property
    def labels_remaining(self) -> int | None:
        return self.ledger.remaining

    def state(self) -> dict[str, Any]:
        return {
            "strategy": self.selector.name,
            **self.ledger.state(),
            "warmup": self.warmup,
            "in_warmup": self.in_warmup,
            "exploration": self.ledger.exploration,
            "selector": self.selector.state(),
            "accuracy_estimate": self.monitor.state(self.ledger.seen),
            "stopping": None if self.stopping is None else self.stopping.state(),
            "drift": None if self.drift is None else self.drift.state(),
            "events": [event.as_dict() for event in self.events],
        }
