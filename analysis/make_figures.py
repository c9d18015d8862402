"""Run the shipped scenarios and write the README figures into docs/figures/.

    .venv/bin/python analysis/make_figures.py [quickstart presets design-space timesteps ...]

Results are cached in results/<scenario>/, so a second call only redraws. Each figure is written
as docs/figures/<scenario>-<figure>.png and .svg.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from accelsim import plots, results, runner

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("quickstart", "presets", "design-space", "timesteps", "quantization")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(DEFAULT))
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--scheduler", default=None, help="Dask address, or 'serial'")
    args = parser.parse_args(argv)
    for name in args.scenarios:
        report = runner.run(ROOT / "scenarios" / f"{name}.yaml",
                            out=ROOT / "results" / name, scheduler=args.scheduler)
        res = results.load(report.folder)
        for path in plots.make_plots(res):
            target = args.figures / f"{name}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            print(target.relative_to(ROOT))


if __name__ == "__main__":
    main()
