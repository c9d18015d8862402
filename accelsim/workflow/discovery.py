"""Model discovery: where a scenario's ``model:`` name or path may point to."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = "trained_models"


def model_candidates(model: str, scenario_dir: Path | None = None) -> list[Path]:
    """Where ``model`` may be: as a path (cwd, then the scenario's folder), then as a name in
    ``trained_models/`` (cwd, the scenario's parent, the source checkout)."""
    stem = model[:-5] if model.endswith(".json") else model
    bases = [Path.cwd()] + ([scenario_dir] if scenario_dir else [])
    found = [b / f"{stem}.json" for b in bases]
    roots = [Path.cwd()] + ([scenario_dir.parent] if scenario_dir else []) + \
        [Path(__file__).resolve().parents[1]]
    found += [r / MODELS_DIR / f"{stem}.json" for r in roots]
    return list(dict.fromkeys(p.resolve() for p in found))


def find_model(model: str, scenario_dir: Path | None = None) -> Path | None:
    """The first of :func:`model_candidates` that is a file, or None."""
    return next((p for p in model_candidates(model, scenario_dir) if p.is_file()), None)


def available_models(scenario_dir: Path | None = None) -> list[str]:
    """Names of the models in every ``trained_models/`` folder :func:`model_candidates` looks in."""
    names: set[str] = set()
    for p in model_candidates("x", scenario_dir)[-3:]:
        if p.parent.is_dir():
            names.update(q.stem for q in p.parent.glob("*.json"))
    return sorted(names)
