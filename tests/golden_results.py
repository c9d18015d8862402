"""Golden summaries: every shipped scenario (``scenarios/*.yaml``) at a tiny size, simulated in
this process, compared with the CSV checked in under ``tests/golden/`` so that any change to a
number shows up in review.

Regenerate (after a change that is meant to move the numbers; review the diff by hand):

    .venv/bin/python tests/golden_results.py [NAME ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml")
                   if not p.stem.startswith("paper-"))
"""The paper-scale scenarios calibrate full-width workloads (minutes each): the slow
``test_paper_scenarios_validate`` checks them and ``analysis/paper_scale_tables.py`` measures
them."""
IMAGES = 2
"""Images per point: enough to exercise every path, few enough for the test suite."""

RTOL = 1e-9
"""Relative tolerance of float columns (sums of float64 products; the order of a few of the
sums depends on the thread count). Integer and text columns must match exactly."""


def summary(name: str) -> pd.DataFrame:
    """The summary (sweep table) of shipped scenario ``name`` at :data:`IMAGES` images."""
    from accelsim.workflow import columns as C
    from accelsim.workflow import results as R
    from accelsim.workflow import runner

    with tempfile.TemporaryDirectory() as tmp:
        runner.run(ROOT / "scenarios" / f"{name}.yaml", out=Path(tmp) / name,
                   settings={"data.images": IMAGES, "outputs.csv": False},
                   scheduler=runner.SERIAL, progress=False)
        table = R.load(Path(tmp) / name).summary
    return table.drop(columns=[C.KEY], errors="ignore").reset_index(drop=True)


def path(name: str) -> Path:
    return GOLDEN / f"{name}.csv"


def compare(actual: pd.DataFrame, expected: pd.DataFrame) -> list[str]:
    """What differs: columns, then exact columns (integers, text), then float columns beyond
    :data:`RTOL`."""
    if list(actual.columns) != list(expected.columns) or len(actual) != len(expected):
        return [f"columns or rows differ: {list(actual.columns)} x {len(actual)} vs "
                f"{list(expected.columns)} x {len(expected)}"]
    problems = []
    for col in actual.columns:
        a, e = actual[col], expected[col]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(e):
            av, ev = a.to_numpy(float), e.to_numpy(float)
            close = np.isclose(av, ev, rtol=RTOL, atol=0.0, equal_nan=True)
        else:
            close = a.astype(str).to_numpy() == e.astype(str).to_numpy()
        for i in np.flatnonzero(~close):
            problems.append(f"row {i}, {col}: {a.iloc[i]} (golden {e.iloc[i]})")
    return problems


def main(names: list[str]) -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name in names or SCENARIOS:
        summary(name).to_csv(path(name), index=False)
        print(f"wrote {path(name)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
