"""Experiment specs (``experiments/*.yaml``): read, checked, and laid out as cells.

A spec is a grid of methods x datasets x seeds, with optional ``variants`` (name -> extra
overrides), run by ``python -m vadflow.reproduce`` and read back by ``python -m vadflow.selection``.
A variant is either a list of overrides, for every dataset of the spec, or a mapping from dataset
to overrides: it then runs on the datasets it names only, each with its own overrides. That is how
one variant holds a setting chosen per dataset (``experiments/chosen.yaml``).

Every key is checked before anything runs: a misspelt key, a variant naming a dataset the spec
does not have, or a value of the wrong kind is one line naming the file (``SpecError``).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import yaml

from vadflow.data.types import DataError

REQUIRED = ("methods", "datasets", "seeds")
OPTIONAL = ("name", "variants", "overrides", "jobs", "results_dir", "base")


class SpecError(DataError):
    """A spec that cannot be run: one line naming the file and the problem."""


class Cell(NamedTuple):
    method: str
    dataset: str
    variant: str
    seed: int
    extra: list[str]  # the spec's overrides, then the variant's


def load_spec(path: str | Path) -> dict:
    """The spec at ``path``, checked (``check_spec``)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    check_spec(spec, path)
    return spec


def check_spec(spec, path: str | Path = "spec") -> None:
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: a spec is a mapping of {', '.join(REQUIRED + OPTIONAL)}")
    unknown = [k for k in spec if k not in REQUIRED + OPTIONAL]
    if unknown:
        raise SpecError(f"{path}: unknown key {unknown[0]!r}; a spec has {', '.join(REQUIRED + OPTIONAL)}")
    missing = [k for k in REQUIRED if not spec.get(k)]
    if missing:
        raise SpecError(f"{path}: {missing[0]!r} is missing or empty")
    for key in REQUIRED + ("overrides",):
        if key in spec and not isinstance(spec[key], list):
            raise SpecError(f"{path}: {key!r} must be a list, got {spec[key]!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in spec["seeds"]):
        raise SpecError(f"{path}: 'seeds' must be whole numbers, got {spec['seeds']!r}")
    if "jobs" in spec and not (isinstance(spec["jobs"], int) and not isinstance(spec["jobs"], bool) and spec["jobs"] >= 1):
        raise SpecError(f"{path}: 'jobs' must be a whole number of at least 1, got {spec['jobs']!r}")
    variants = spec.get("variants") or {}
    if not isinstance(variants, dict):
        raise SpecError(f"{path}: 'variants' maps a name to a list of overrides or to a mapping dataset -> overrides")
    for name, extra in variants.items():
        per_dataset = extra if isinstance(extra, dict) else {d: extra for d in spec["datasets"]}
        if not per_dataset:
            raise SpecError(f"{path}: variant {name!r} names no dataset: it would run nowhere")
        strangers = [d for d in per_dataset if d not in spec["datasets"]]
        if strangers:
            raise SpecError(f"{path}: variant {name!r} names dataset {strangers[0]!r}, which is not in the spec's datasets "
                            f"({', '.join(spec['datasets'])})")
        if not all(isinstance(v, list) for v in per_dataset.values()):
            raise SpecError(f"{path}: variant {name!r}: overrides must be a list (per dataset, or for all)")


def variant_names(spec: dict) -> list[str]:
    return list(spec.get("variants") or {"": []})


def variant_overrides(spec: dict, variant: str, dataset: str) -> list[str] | None:
    """The variant's overrides on ``dataset``; None where it does not run there."""
    extra = (spec.get("variants") or {"": []})[variant]
    if isinstance(extra, dict):
        return list(extra[dataset]) if dataset in extra else None
    return list(extra)


def spec_cells(spec: dict, seeds: list[int] | None = None) -> list[Cell]:
    """Every cell, datasets outermost and methods innermost, so an interrupted grid still holds
    complete side-by-side comparisons."""
    cells = []
    for dataset in spec["datasets"]:
        for variant in variant_names(spec):
            extra = variant_overrides(spec, variant, dataset)
            if extra is None:
                continue
            for seed in seeds or spec["seeds"]:
                for method in spec["methods"]:
                    cells.append(Cell(method, dataset, variant, int(seed), list(spec.get("overrides") or []) + extra))
    return cells


def cell_dir(spec: dict, root: Path, cell: Cell) -> Path:
    return root / spec.get("results_dir", "experiments/results/table_runs") / cell.method / cell.dataset / cell.variant / f"seed{cell.seed}"
