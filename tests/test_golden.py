"""Every shipped scenario at a tiny size against its checked-in summary (tests/golden/*.csv;
regenerate with ``.venv/bin/python tests/golden_results.py``)."""

from __future__ import annotations

import pandas as pd
import pytest
from golden_results import SCENARIOS, compare, path, summary

SLOW = {"timesteps", "design-space", "ann-baseline", "mapping-search"}  # many points, or a search


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in SCENARIOS])
def test_shipped_scenario_matches_its_golden_summary(name):
    assert path(name).is_file(), f"no golden file; run tests/golden_results.py {name}"
    assert compare(summary(name), pd.read_csv(path(name))) == []


def test_compare_catches_a_changed_number():
    golden = pd.DataFrame({"point": [0, 1], "model": ["a", "b"], "energy_uj": [1.0, 2.0]})
    assert compare(golden.copy(), golden) == []
    nudged = golden.assign(energy_uj=[1.0, 2.0 * (1 + 1e-6)])
    assert compare(nudged, golden) == ["row 1, energy_uj: 2.000002 (golden 2.0)"]
    assert compare(golden.assign(point=[0, 2]), golden) == ["row 1, point: 2 (golden 1)"]
    assert compare(golden.drop(columns="model"), golden)[0].startswith("columns or rows")
