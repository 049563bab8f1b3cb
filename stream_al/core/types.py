"""Value types shared by the core."""

from __future__ import annotations

from typing import Literal

#: A feature value as it arrives on the wire.
FeatureValue = float | int | str | bool
#: One sample's features, by name.
Features = dict[str, FeatureValue]
#: A class label. Labels are strings on the wire and in the core (see ``schemas.class_label``).
ClassLabel = str
#: Class probabilities, summing to one (empty for a model that has seen no label yet).
Proba = dict[ClassLabel, float]
#: Why a sample was sent to the oracle.
QueryReason = Literal["uncertain", "exploration", "warm-up"]
