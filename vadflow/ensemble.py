"""Ensembles of trained runs: each member's window scores standardised on its own training windows,
then averaged, then scored by the one evaluator like any run.

Two methods trained on the same windows make different mistakes, so the mean of their scores is a
detector of its own. The members' scores live on different scales (bits per dimension of different
models, or the ``max`` join of two z-scores), so each is first standardised by the mean and std of
its scores on the run's training windows (``train_score`` in ``window_scores.npz``: normal training
data only, no test score and no label). The ensemble's training-window scores are the same mean of
standardised scores, so the ``mocodad`` protocol fixes its offset from them as it does for one run.

Members are reproduce cells (``<results>/<method>/<dataset>/<variant>``, one ``seed<N>`` folder per
seed). Seed N of every member makes seed N of the ensemble; ``CELL@+K`` takes that cell's seed N + K
instead, so one method's runs of other seeds make a two-seed ensemble, the control that tells the
members' diversity from the mere averaging of two runs. The members must score the same windows:
the same dataset settings, up to the training-only ones (``TRAINING_ONLY``). ``--scores`` adds a
run's re-scorings of other window sets, e.g. the selection set's global-only and pose-only events
(``sel_global``, ``sel_pose``, written by ``python -m vadflow.selection``), so an ensemble can be put
to the selection set before any test figure:

    python -m vadflow.ensemble experiments/results/selection_runs/{stgnf,daflow}/poselift/max --scores sel_global sel_pose
    python -m vadflow.ensemble experiments/results/table_runs/{stgnf,daflow}/poselift/chosen_track_ends
    python -m vadflow.ensemble experiments/results/selection_runs/stgnf/poselift/max{,@+3} --seeds 1 2 3 --scores sel_global sel_pose

Writes ``<results>/ensemble/<dataset>/<name>/seed<N>/[<scores>/]`` (window scores and metrics.json)
and prints one table per scored window set: every member's and the ensemble's headline AUC-ROC,
AUC-PR and EER (mean ± std over seeds), all computed again here by today's protocol definitions.
``--out FILE.md`` keeps the tables.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vadflow.checkpoint import read_checkpoint
from vadflow.cli import friendly_errors
from vadflow.config import default_path
from vadflow.data.types import DataError
from vadflow.table import fmt, markdown_table, rescore_overrides, rescore_window_scores

WINDOW_SCORES = "window_scores.npz"
TRAINING_ONLY = ("flip", "eval_batch_size")  # dataset keys that change training or speed, not which windows are scored
OWN = ""  # the run's own window scores (its test set, or the selection set's mixed events)


def standardised(score: np.ndarray, train_score: np.ndarray, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """(test, training) scores minus the training scores' mean, over their (population) std."""
    mean, std = float(np.mean(train_score)), float(np.std(train_score))
    if not np.isfinite(mean) or not np.isfinite(std) or std <= 0:
        raise DataError(f"{source}: the training windows' scores have no spread (mean {mean}, std {std}); nothing to standardise by")
    return (score - mean) / std, (train_score - mean) / std


def read_scores(scores_file: Path) -> dict[str, np.ndarray]:
    if not scores_file.is_file():
        raise DataError(f"{scores_file}: not found (a run's window scores)")
    try:
        saved = np.load(scores_file)
        files = saved.files
    except Exception as exc:  # a truncated or foreign file
        raise DataError(f"{scores_file}: not a readable window-score file ({type(exc).__name__})") from None
    if not {"index", "score"} <= set(files):
        raise DataError(f"{scores_file}: holds no window index and score")
    if "train_score" not in files or not len(saved["train_score"]):
        raise DataError(f"{scores_file}: no training-window scores (train_score) to standardise by: score the run again with vadflow-eval")
    out = {k: saved[k] for k in ("index", "score", "train_score")}
    for key in ("score", "train_score"):  # one bad value would spread to every window through the standardisation
        bad = int((~np.isfinite(out[key])).sum())
        if bad:
            raise DataError(f"{scores_file}: {bad} {'training-window' if key == 'train_score' else 'window'} scores are NaN or inf")
    return out


def mean_of_members(members: list[dict[str, np.ndarray]], sources: list[Path]) -> dict[str, np.ndarray]:
    """The mean of the members' standardised scores, window by window; they must hold the same windows
    in the same order and the same number of training windows."""
    first, where = members[0], sources[0]
    for member, source in zip(members[1:], sources[1:]):
        if len(member["index"]) != len(first["index"]) or not np.array_equal(member["index"], first["index"]):
            raise DataError(f"{source} and {where} score different windows ({len(member['index'])} and {len(first['index'])}): "
                            "an ensemble needs members with the same dataset settings")
        if len(member["train_score"]) != len(first["train_score"]):
            raise DataError(f"{source} and {where} hold {len(member['train_score'])} and {len(first['train_score'])} training-window scores")
    parts = [standardised(m["score"], m["train_score"], s) for m, s in zip(members, sources)]
    return {"index": first["index"], "score": np.mean([p[0] for p in parts], 0), "train_score": np.mean([p[1] for p in parts], 0)}


def common_dataset(datasets: list[dict], runs: list[Path]) -> dict:
    """The members' dataset settings, which must agree up to ``TRAINING_ONLY``."""
    first = datasets[0]
    for ds, run in zip(datasets[1:], runs[1:]):
        differ = sorted(k for k in set(ds) | set(first) if k not in TRAINING_ONLY and ds.get(k) != first.get(k))
        if differ:
            raise DataError(f"{run} and {runs[0]} were trained on different dataset settings ({', '.join(differ)}): "
                            "an ensemble needs members that score the same windows")
    return dict(first)


class Member(NamedTuple):
    cell: Path
    seed_offset: int  # seed N of the ensemble takes the cell's seed N + seed_offset

    def run(self, seed: int) -> Path:
        return self.cell / f"seed{seed + self.seed_offset}"

    @property
    def offset_text(self) -> str:
        """``@+K`` as given on the command line, or nothing for the cell's own seeds."""
        return f"@+{self.seed_offset}" if self.seed_offset else ""

    @property
    def name(self) -> str:
        """``<method>/<variant>[@+K]`` of a reproduce cell ``<results>/<method>/<dataset>/<variant>``."""
        return f"{self.cell.parent.parent.name}/{self.cell.name}{self.offset_text}"


def parse_member(text: str) -> Member:
    """``CELL`` or ``CELL@+K``."""
    cell, _, offset = text.partition("@")
    if offset and not re.fullmatch(r"\+\d+", offset):
        raise DataError(f"{text}: a member is CELL or CELL@+K (K: how many seeds on from the ensemble's)")
    return Member(Path(cell), int(offset[1:]) if offset else 0)


def seeds_of(members: list[Member], wanted: list[int] | None) -> list[int]:
    """The ensemble seeds for which every member holds its run (``seed<N>`` folders), or ``wanted``, each checked."""
    held = [{int(m.group(1)) - mb.seed_offset for d in mb.cell.glob("seed*") if (m := re.fullmatch(r"seed(\d+)", d.name))} for mb in members]
    if wanted:
        for member, seeds in zip(members, held):
            missing = sorted(set(wanted) - seeds)
            if missing:
                raise DataError(f"{member.cell}: no run for seed {', '.join(str(s + member.seed_offset) for s in missing)}")
        return list(wanted)
    common = sorted(set.intersection(*held))
    if not common:
        raise DataError(f"no ensemble seed for which every member holds a run: {', '.join(str(m.cell) for m in members)}")
    return common


def scored_set(runs: list[Path], folder: str, data_root: str, cache_dir: str, out_dir: Path) -> dict:
    """One seed, one window set: each member's results and the ensemble's, per protocol (headline first).
    The ensemble's window scores and metrics go to ``out_dir``."""
    datasets = []
    for run in runs:
        ds = dict(read_checkpoint(run / "model.ckpt")["dataset"])
        ds.update(rescore_overrides(run / folder)[0] if folder else {})
        datasets.append(ds)
    ds = common_dataset(datasets, runs)
    files = [(run / folder / WINDOW_SCORES) for run in runs]
    ensemble = mean_of_members([read_scores(f) for f in files], files)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / WINDOW_SCORES, **ensemble)
    results = [rescore_window_scores(ds, f, data_root, cache_dir) for f in files]
    results.append(rescore_window_scores(ds, out_dir / WINDOW_SCORES, data_root, cache_dir))
    own = runs[0] / folder / "metrics.json"
    label = (json.loads(own.read_text()).get("dataset", ds["name"]) if own.is_file() else ds["name"]) + (f" ({folder})" if folder else "")
    head = results[-1][0]
    metrics = {"method": "ensemble", "members": [str(r) for r in runs], "dataset": label, "protocol": head["protocol"],
               "auc": head["auc"], "standardised_on": "each member's training-window scores",
               "protocols": {r["protocol"]: {k: v for k, v in r.items() if isinstance(v, (int, float, str))} for r in results[-1]}}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return {"label": label, "results": results}


def ensemble(members: list[Member], folders: list[str], seeds: list[int], out_root: Path, data_root: str, cache_dir: str) -> list[dict]:
    """Per window set: {label, protocol, seeds, rows: {member name or "ensemble": {auc, auc_pr, eer: [per seed]}}}."""
    tables = []
    for folder in folders:
        rows: dict[str, dict[str, list[float]]] = {}
        label = protocol = None
        for seed in seeds:
            scored = scored_set([m.run(seed) for m in members], folder, data_root, cache_dir, out_root / f"seed{seed}" / folder)
            label = scored["label"]
            for name, results in zip(row_names(members), scored["results"]):
                head = results[0]
                protocol = head["protocol"]
                row = rows.setdefault(name, {"auc": [], "auc_pr": [], "eer": []})
                for metric in row:
                    row[metric].append(head[metric])
        tables.append({"label": label, "protocol": protocol, "rows": rows, "seeds": seeds})
    return tables


def row_names(members: list[Member]) -> list[str]:
    """The table's rows: each member's short name (its full cell path where two short names agree), then the ensemble."""
    short = [m.name for m in members]
    names = [n if short.count(n) == 1 else f"{m.cell}{m.offset_text}" for n, m in zip(short, members)]
    return names + ["ensemble"]


def table_text(table: dict) -> str:
    rows = [[name, fmt(row["auc"]), fmt(row["auc_pr"]), fmt(row["eer"]), ", ".join(f"{100 * v:.1f}" for v in row["auc"])]
            for name, row in table["rows"].items()]
    heading = f"{table['label']}, protocol {table['protocol']}, seeds {', '.join(map(str, table['seeds']))}:"
    return f"{heading}\n\n" + markdown_table(["scores of", "AUC-ROC (%)", "AUC-PR (%)", "EER (%)", "AUC-ROC per seed"], rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+", help="two or more reproduce cells, <results>/<method>/<dataset>/<variant>[@+K] (@+K: seed N + K)")
    ap.add_argument("--scores", nargs="*", default=[], metavar="FOLDER", help="also each run's re-scoring in FOLDER (e.g. sel_global sel_pose)")
    ap.add_argument("--seeds", nargs="*", type=int, default=None, help="default: every seed all members hold")
    ap.add_argument("--name", default=None, help="the ensemble's folder name (default: the members' methods joined by +)")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = ap.parse_args(argv)
    if len(args.members) < 2:
        ap.error("an ensemble needs at least two members")
    with friendly_errors():
        members = [parse_member(m) for m in args.members]
        for member in members:
            if not member.cell.is_dir():
                raise DataError(f"{member.cell}: no such cell folder")
        if len(set(members)) != len(members):
            raise DataError("a member is given twice: its runs would be counted twice (CELL@+K takes other seeds of the same cell)")
        datasets = {m.cell.parent.name for m in members}
        if len(datasets) != 1:
            raise DataError(f"the cells belong to different datasets ({', '.join(sorted(datasets))})")
        name = args.name or "+".join(m.name.replace("/", "-").replace("@+", "-seed+") for m in members)
        out_root = members[0].cell.parent.parent.parent / "ensemble" / datasets.pop() / name
        seeds = seeds_of(members, args.seeds)
        tables = ensemble(members, [OWN] + list(args.scores), seeds, out_root, default_path("data_root"), default_path("cache_dir"))
        text = "\n".join(table_text(t) for t in tables)
        print(text + f"\nwritten: {out_root}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
