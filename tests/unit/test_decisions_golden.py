"""The learner's decisions stay exactly those recorded before its hot path was optimised.

See ``decision_scenarios.py``: each scenario is a fixed simulator run (seeded strategy,
stream, oracle); its queries (step, id, reason, threshold), a digest of every scored
sample (label, probabilities, uncertainty, full query messages) and the final result
(accuracy, estimates, events) must equal the golden.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.decision_scenarios import GOLDEN, SCENARIOS, run

_golden = json.loads(GOLDEN.read_text())


def test_the_golden_covers_every_scenario() -> None:
    assert sorted(_golden) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_decisions_equal_the_golden(name: str) -> None:
    expected = _golden[name]
    actual = run(name)
    # Queries first: a difference there is the readable one.
    assert actual["queries"] == expected["queries"]
    assert actual["result"] == expected["result"]
    assert actual["scored_sha256"] == expected["scored_sha256"]
    assert expected["queries"], "a scenario that asks nothing guards nothing"
