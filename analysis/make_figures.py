"""Run the shipped scenarios and write the README figures into docs/figures/.

    .venv/bin/python analysis/make_figures.py [quickstart presets design-space timesteps ...]
        [--images N] [--set dotted.path=value ...] [--scheduler serial]

Results are cached in results/<scenario>/ (results/<scenario>-<N>img/ with ``--images``), so a
second call only redraws. Each figure is written as docs/figures/<scenario>-<figure>.png and .svg;
every figure title states the number of images it was measured on.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from accelsim.workflow import plots, results, runner
from accelsim.workflow.scenario import parse_set

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("quickstart", "presets", "design-space", "timesteps", "quantization")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(DEFAULT))
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--images", type=int, default=None,
                        help="images per point (data.images); default: the scenario's")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        help="override a scenario field: dotted.path=value (repeatable)")
    parser.add_argument("--scheduler", default=None, help="Dask address, or 'serial'")
    args = parser.parse_args(argv)
    settings = parse_set(args.settings)
    if args.images is not None:
        settings["data.images"] = args.images
    for name in args.scenarios:
        folder = ROOT / "results" / (name if args.images is None else f"{name}-{args.images}img")
        report = runner.run(ROOT / "scenarios" / f"{name}.yaml", settings=settings, out=folder,
                            scheduler=args.scheduler)
        res = results.load(report.folder)
        for path in plots.make_plots(res):
            target = args.figures / f"{name}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            print(target)


if __name__ == "__main__":
    main()
