"""accelsim CLI commands (scenarios): ``run``, ``validate``, ``report``, ``plot``.

Thin wrappers over :mod:`accelsim.workflow.runner`, :mod:`accelsim.workflow.results` and
:mod:`accelsim.workflow.plots`;
a scenario problem is printed as ``file:line: field: message`` with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from accelsim.cli import app, fail
from accelsim.workflow import columns as C
from accelsim.workflow.scenario import ScenarioError, parse_set

INTERRUPTED = 130
"""Exit code of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it)."""


def _settings(items: list[str] | None, images: int | None) -> dict:
    try:
        settings = parse_set(items or [])
    except ValueError as exc:
        raise fail(exc) from None
    if images is not None:
        settings["data.images"] = images
    return settings


def _fail(exc: Exception) -> typer.Exit:
    return fail(exc)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    set_: list[str] = typer.Option(None, "--set", help="override a field: dotted.path=value"),
    images: int = typer.Option(None, "--images", min=1, help="number of images (data.images)"),
    out: Path = typer.Option(None, "--out", help="result folder (default: outputs.dir)"),
    scheduler: str = typer.Option(None, "--scheduler",
                                  help="Dask scheduler address, or 'serial' for no Dask"),
    workers: int = typer.Option(None, "--workers", min=1,
                                help="workers of the local Dask cluster"),
    plots: bool = typer.Option(None, "--plots/--no-plots", help="write figures (outputs.plots)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Simulate a scenario (every point of its sweep) and write its result folder."""
    from accelsim.workflow import plots as P
    from accelsim.workflow import results as R
    from accelsim.workflow import runner
    from accelsim.workflow.scenario import load

    settings = _settings(set_, images)
    try:
        report = runner.run(scenario, settings=settings, out=out, scheduler=scheduler,
                            workers=workers, progress=not quiet)
        want_plots = load(scenario, settings).outputs.plots if plots is None else plots
    except (ScenarioError, ValueError) as exc:
        raise _fail(exc) from None
    except runner.Interrupted as stop:
        typer.echo(str(stop), err=True)
        raise typer.Exit(code=INTERRUPTED) from None
    typer.echo(f"{report.points} point(s): {report.simulated} simulated, {report.cached} cached "
               f"-> {report.folder}")
    results = R.load(report.folder)
    typer.echo(R.format_summary(results))
    if want_plots:
        written = P.make_plots(results)
        names = sorted(p.stem for p in written if p.suffix == ".png")
        typer.echo(f"figures (PNG + SVG) in {report.folder / R.FIGURES_DIR}: {', '.join(names)}")


@app.command()
def validate(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    set_: list[str] = typer.Option(None, "--set", help="override a field: dotted.path=value"),
    images: int = typer.Option(None, "--images", min=1, help="number of images (data.images)"),
) -> None:
    """Check a scenario (schema, model file, data, hardware, mapping) without simulating."""
    from accelsim.workflow import runner

    try:
        points = runner.check(scenario, _settings(set_, images))
    except (ScenarioError, ValueError) as exc:
        raise _fail(exc) from None
    first = points[0].scenario
    from accelsim.workflow.results import describe_model

    model = describe_model(first.model_dump(mode="json"))
    typer.echo(f"{scenario}: valid; {len(points)} point(s), model {model}, data "
               f"{first.data.set}/{first.data.split} x {first.data.images}, hardware "
               f"{first.hardware.preset}, T={first.simulation.timesteps}")


def _load_results(folder: Path):
    """A result folder, or a clean exit that says what is wrong with it."""
    from accelsim.workflow import results as R

    try:
        return R.load(folder)
    except (R.ResultsError, OSError) as exc:
        raise _fail(exc) from None


@app.command()
def report(
    folder: Path = typer.Argument(..., help="result folder written by 'accelsim run'"),
    point: int = typer.Option(None, "--point", help="sweep point to break down (default: all)"),
) -> None:
    """Print the summary and the breakdown tables of a run or a sweep."""
    from accelsim.workflow import results as R

    results = _load_results(folder)
    typer.echo("== summary (per inference) ==")
    typer.echo(R.format_summary(results))
    points = [point] if point is not None else list(results.summary[C.POINT])
    with pd.option_context("display.width", 160, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        for p in points:
            try:
                res = results.point(p)
            except KeyError as exc:
                raise _fail(exc) from None
            label = "" if not results.is_sweep else f" (point {p})"
            typer.echo(f"\n== energy by layer and component, µJ per inference{label} ==")
            energy = R.energy_by_layer(res)
            full = energy[list(C.COMPONENT_UJ)].sum(axis=1)
            energy.columns = [c.removeprefix("energy_").removesuffix("_uj")
                              .replace("compute_only_", "c-only ") for c in energy.columns]
            energy.insert(len(C.COMPONENT_UJ), "total", full)
            typer.echo(energy.to_string())
            typer.echo(f"\n== latency by layer and timestep, {R.time_unit(res)}{label} ==\n"
                       "(column t: cycles from the layer's last activity of t-1 to its last "
                       "activity of t; finish: their sum, when the layer finished the image)")
            latency = R.latency_by_layer(res)
            latency.columns = [f"t={t}" for t in latency.columns]
            latency["finish"] = R.layer_finish_cycles(res)
            typer.echo(latency.to_string(float_format="{:,.0f}".format))
            typer.echo(f"\n== spike rate per layer (spikes over T / neurons){label} ==")
            typer.echo(R.spike_rates(res).to_string())
            typer.echo(f"\n== full / compute-only energy{label} ==")
            typer.echo(R.compute_only_ratio(res).to_string())
            if C.ANN_ENERGY in res.layers:
                from accelsim.chip.ann import by_layer

                typer.echo(f"\n== SNN vs the ANN on the same chip, per inference{label} ==\n"
                           "(energy µJ; SNN/ANN ratios full-system and compute-only; when each "
                           f"layer finished the image, {R.time_unit(res)})")
                typer.echo(by_layer(res.layers).to_string())


@app.command()
def plot(
    folder: Path = typer.Argument(..., help="result folder written by 'accelsim run'"),
    out: Path = typer.Option(None, "--out", help="figure folder (default: FOLDER/figures)"),
) -> None:
    """Draw the figures of a run or a sweep (PNG and SVG)."""
    from accelsim.workflow import plots as P

    written = P.make_plots(_load_results(folder), out)
    for path in written:
        typer.echo(str(path))
