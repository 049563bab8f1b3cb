"""Validated configuration of the core: which model, which measure, which strategy.

These models are the single source of truth for the learner. The service's settings
embed them (``stream_al.settings``), the simulator builds them from its flags, and a
checkpoint records them so a restart can tell whether it still fits.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream_al.core.drift import DetectorName, ErrorLabels

ModelName = Literal[
    "logreg",
    "hoeffding-tree",
    "adaptive-random-forest",
    "naive-bayes",
    "bagging-logreg",
    "bagging-hoeffding-tree",
]
MeasureName = Literal[
    "least-confidence",
    "margin",
    "entropy",
    "vote-entropy",
    "kl-divergence",
    "expected-gradient-length",
]
StrategyName = Literal[
    "adaptive",
    "random",
    "fixed",
    "variable-uncertainty",
    "randomized-variable-uncertainty",
    "split",
    "quantile",
    "pool",
    "density",
    "error-reduction",
    "albl",
    "pal",
]
#: The strategies ALBL may alternate among (those paced by the ledger and ranking alone).
AlblArm = Literal["adaptive", "random", "density", "error-reduction"]

EstimateName = Literal["random", "weighted"]
ColdStart = Literal["first", "clusters"]
DriftDetection = Literal["off", "errors", "uncertainty", "both"]
#: Strategies that know each query's probability of being asked (the weighted estimate).
WEIGHTED_STRATEGIES: tuple[StrategyName, ...] = (
    "adaptive",
    "random",
    "density",
    "error-reduction",
    "albl",
    "pal",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Frozen):
    """Which river model to train, and how."""

    name: ModelName = "logreg"
    #: Committee size for the bagging models and the forest.
    n_models: int = Field(10, ge=2, le=100)
    seed: int = 42
    #: Any river classifier or pipeline instead of a named model: ``module:function``
    #: returning a new, untrained one (given ``seed=`` if it takes a ``seed`` argument).
    #: ``name`` is then ignored.
    factory: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$")


class StrategyConfig(_Frozen):
    """How to decide which samples are worth a label.

    ``budget`` is the share of samples that may be sent to the oracle. ``adaptive``,
    ``random``, ``quantile`` and ``pool`` spend it over the long run, warm-up and
    exploration included; the threshold strategies (``fixed`` and the variable-uncertainty
    family) only cap their spending over the window, so their warm-up labels come on top.
    """

    name: StrategyName = "adaptive"
    budget: float = Field(0.05, gt=0.0, le=1.0)
    #: Threshold for ``fixed``, start threshold for the variable-uncertainty family.
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    #: Threshold step s of Variable Uncertainty.
    step: float = Field(0.01, gt=0.0, lt=1.0)
    #: Window w (samples) over which spending and uncertainty quantiles are estimated.
    window: int = Field(1000, ge=10)
    #: Standard deviation delta of the threshold noise in Randomised Variable Uncertainty.
    delta: float = Field(1.0, gt=0.0)
    #: Share v of decisions taken at random by ``split``.
    random_share: float = Field(0.2, ge=0.0, le=1.0)
    #: Label-deficit tolerance w_tol of the quantile filter (labels).
    label_tolerance: float = Field(50.0, gt=0.0)
    #: ``adaptive`` and ``random``: a deficit of this many labels doubles the query rate
    #: (a surplus of as many stops it) until repaid; smaller spends more exactly, larger
    #: is more selective.
    pacing_labels: float = Field(10.0, gt=0.0)
    #: ``adaptive``: the budget of the first ``head_start`` samples may be spent at once,
    #: and is paid back by sample ``2 * head_start``; a cold model learns sooner. 0 = off.
    head_start: int = Field(500, ge=0)
    #: ``adaptive``: rank each sample only against the samples scored since the model's
    #: last ``model_horizon`` changes (labels learned; a replaced model counts as that
    #: many), as a model surer after every label would otherwise spend under budget; 0 =
    #: against the whole window.
    model_horizon: int = Field(10, ge=0)
    #: Pool mode: window W of buffered samples, and an optional random sub-pool size.
    pool_size: int = Field(100, ge=2)
    sub_pool_size: int | None = Field(None, ge=1)
    #: ``density``: the uncertainty is weighted by ``min(1, usual / d) ** density_power``,
    #: d the distance to the 5th nearest of the last ``density_reservoir`` samples.
    density_reservoir: int = Field(100, ge=10)
    density_power: float = Field(1.0, ge=0.0)
    #: ``error-reduction``: the expected entropy reduction is taken over a seeded reservoir
    #: of this many recent samples, and only for samples whose margin ranks in the top
    #: ``eer_prefilter`` share of the window (the rest rank below them by margin), so the
    #: cost per sample is bounded by ``eer_prefilter`` scores (at least twice the query
    #: rate pass, whatever this says, so that a large budget is not spent by margin alone).
    eer_reservoir: int = Field(30, ge=2, le=1000)
    eer_prefilter: float = Field(0.25, gt=0.0, le=1.0)
    #: ``albl``: the strategies the bandit alternates among (each with the settings
    #: above), its share ``albl_gamma`` of uniform draws and its learning rate.
    albl_arms: tuple[AlblArm, ...] = Field(
        ("adaptive", "density", "error-reduction", "random"), min_length=2
    )
    albl_gamma: float = Field(0.2, gt=0.0, le=1.0)
    albl_eta: float = Field(0.05, gt=0.0)
    #: ``pal``: the probabilistic gain counts the labels near a sample (RBF kernel on the
    #: standardised features; ``pal_bandwidth`` its gamma, None: 1 / features) among the
    #: last ``pal_reservoir`` queries, each forgotten ``pal_horizon`` samples after it was
    #: asked (None: only the reservoir's size forgets); ``pal_prior`` is the Dirichlet
    #: prior per class and ``pal_m_max`` the most hypothetical labels the gain looks ahead.
    pal_reservoir: int = Field(100, ge=1, le=10_000)
    pal_horizon: int | None = Field(1000, ge=1)
    pal_prior: float = Field(1e-3, gt=0.0)
    pal_m_max: int = Field(2, ge=1, le=5)
    pal_bandwidth: float | None = Field(None, gt=0.0)
    #: Share of all queries drawn at random (the remedy for uncertainty picking outliers).
    exploration: float = Field(0.1, ge=0.0, le=1.0)
    #: The first ``warmup`` samples are queried whatever the model says; the labels are
    #: charged to the budget and repaid from the following ``warmup / budget`` samples.
    warmup: int = Field(20, ge=0)
    #: Which samples the warm-up labels go to: the ``first`` ones, or (``clusters``) one
    #: per new region of the stream over its first ``warmup / budget`` samples (online
    #: facility location on the standardised features; the uncertainty rule runs along).
    cold_start: ColdStart = "first"
    #: Discount the uncertainty of samples close to queries whose label has not come
    #: back yet, so that late labels do not make the rule ask about one region twice.
    in_flight: bool = False
    #: A budget people can keep: items to label per hour (with k annotators per item the
    #: team gives k times as many answers). The share asked is this over the stream's
    #: rate, measured on the samples' own clock (``timestamp``, else arrival) over the
    #: last minutes; ``budget`` is the share until the rate is known.
    labels_per_hour: float | None = Field(None, gt=0.0)
    #: Follow the queue: while the labelers' backlog (queries not answered yet) is above
    #: this depth ask less, below it more (at most halving or doubling per reading, up to
    #: 16 times either way), so the queue stays near it. None: the backlog is not followed.
    target_backlog: int | None = Field(None, ge=0)
    #: Hard cap on the total number of labels asked for; None means no cap.
    max_labels: int | None = Field(None, ge=0)
    seed: int = 42
    #: The unbiased accuracy estimate (``stream_al.core.estimate``): the window of samples
    #: it covers, the confidence of its interval, and which estimate the stopping rule
    #: reads: ``random`` (warm-up and exploration labels only; any strategy) or
    #: ``weighted`` (every label by 1 / its probability; ``adaptive`` and ``random`` only).
    estimate_window: int = Field(5000, ge=10)
    estimate_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    estimate: EstimateName = "random"
    #: Stop spending on uncertainty once the estimate's lower bound reaches this accuracy,
    #: resume when the estimate falls below it; None never stops (only ``max_labels`` does).
    target_accuracy: float | None = Field(None, gt=0.0, le=1.0)
    #: Stop spending on uncertainty too once the estimate has gained less than
    #: ``plateau_tolerance`` over ``plateau_window`` samples (the learning curve is flat);
    #: resume when its upper bound falls below where it stopped. None: no plateau rule.
    plateau_window: int | None = Field(None, ge=100)
    plateau_tolerance: float = Field(0.005, ge=0.0, lt=1.0)
    #: While stopped, the share of samples asked at random (monitoring the estimate);
    #: None keeps the exploration rate, ``exploration * budget``.
    monitoring_rate: float | None = Field(None, ge=0.0, le=1.0)
    #: Drift detection (``stream_al.core.drift``): on the labels' errors, on the
    #: uncertainty (ADWIN), or both. ``errors`` is the one measured to work (bench/drift.py).
    drift_detection: DriftDetection = "off"
    #: The detector on the labels' errors: river's ``hddm-w`` (Hoeffding bound on a
    #: weighted mean), ``hddm-a``, ``ddm``, ``eddm``, or ``adwin``.
    drift_detector: DetectorName = "hddm-w"
    #: Whose errors it sees: ``all`` labels (the prediction made when each was asked
    #: against its label), or only the ``random`` ones (warm-up and exploration:
    #: unbiased, but one per ``1 / (exploration * budget)`` samples, too few to detect).
    drift_labels: ErrorLabels = "all"
    #: The detectors' confidence (HDDM's drift confidence, ADWIN's delta): smaller
    #: detects later and more surely.
    drift_delta: float = Field(0.001, gt=0.0, lt=1.0)
    #: On a drift: exploration share for ``drift_duration`` samples (same budget) ...
    drift_exploration: float = Field(0.5, ge=0.0, le=1.0)
    drift_duration: int = Field(2000, ge=0)
    #: ... restart the adaptive strategy's ranking window ...
    drift_restart: bool = True
    #: ... and train a fresh model (off: the model adapts on its own, which after a label
    #: flip took longer than 5,000 samples). It replaces the current model once it has
    #: dueled ``drift_challenger_labels`` labels and was right more often; it is dropped
    #: if it has not after 20 times as many. 0 replaces the model at once.
    drift_reset_model: bool = True
    drift_challenger_labels: int = Field(10, ge=0)

    @model_validator(mode="after")
    def _sub_pool_fits(self) -> StrategyConfig:
        if self.sub_pool_size is not None and self.sub_pool_size > self.pool_size:
            raise ValueError("sub_pool_size must not exceed pool_size")
        return self

    @model_validator(mode="after")
    def _arms_differ(self) -> StrategyConfig:
        if len(set(self.albl_arms)) != len(self.albl_arms):
            raise ValueError("albl_arms must not repeat a strategy")
        return self

    @model_validator(mode="after")
    def _estimate_fits(self) -> StrategyConfig:
        if self.estimate == "weighted" and self.name not in WEIGHTED_STRATEGIES:
            known = ", ".join(WEIGHTED_STRATEGIES)
            raise ValueError(
                f"estimate 'weighted' needs a strategy that knows its "
                f"probabilities ({known}), not {self.name!r}"
            )
        if self.monitoring_rate is not None and self.monitoring_rate > self.budget:
            raise ValueError("monitoring_rate must not exceed budget")
        return self


class LearnerConfig(_Frozen):
    """Everything that defines an ``ActiveLearner``."""

    model: ModelConfig = ModelConfig()
    #: The class labels the model may learn; a label outside this set is refused as invalid.
    #: None accepts any label (a new class is learned when it first arrives).
    classes: tuple[str, ...] | None = Field(None, min_length=1)
    measure: MeasureName = "margin"
    strategy: StrategyConfig = StrategyConfig()
    #: Queried samples whose label has not come back yet: at most this many are kept ...
    pending_max: int = Field(100_000, ge=1)
    #: ... for at most this long (seconds of the samples' own clock).
    pending_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0.0)
    #: Window (labeled samples) of the recent prequential accuracy.
    accuracy_window: int = Field(500, ge=1)

    def model_identity(self) -> dict[str, object]:
        """What makes a trained model this model: a checkpoint restores only if it matches.

        The rest (measure, strategy, budget, pending limits) may change over a checkpoint:
        ``ActiveLearner.reconfigure`` applies it to the restored learner.
        """
        return self.model_dump(mode="json", include={"model", "classes"})
