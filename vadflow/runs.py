"""A run directory: checked writable before training; after it, the statistics and calibration a
method keeps, and its evaluation: window scores -> the evaluator -> frame scores, metrics, figures.

``vadflow-train`` and ``vadflow-eval`` both end here after Lightning has scored the test windows
(``AnomalyModule`` writes ``window_scores.npz``: spawned processes share no memory with the
launcher). Files written next to it: ``frame_scores_<protocol>.npz``, ``metrics.json`` (by the
entry point) and ``figures/``.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from vadflow import scoring
from vadflow.config import git_commit
from vadflow.data.types import ConfigError, DataError

WINDOW_SCORES = "window_scores.npz"
log = logging.getLogger("vadflow.runs")


def check_writable(out_dir: Path, probe_bytes: int = 1 << 20) -> None:
    """Fail before training, not after it, when the run directory cannot take the run's files
    (read-only, or a full disk: a 1 MB probe is written and removed)."""
    probe = out_dir / ".write_probe"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * probe_bytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise DataError(f"run directory {out_dir} cannot be written ({exc.strerror or exc}): set hydra.run.dir to a writable folder") from None
    finally:
        probe.unlink(missing_ok=True)


def fit_on_training_windows(method, dm, hook: str) -> None:
    """``method.<hook>(loader)`` over every training window, fixed order, no flips, in this process,
    so every rank and every strategy gets the same values; nothing if the method has no such hook.

    * ``fit_reference``, before training: what the windows are measured against (trajectory=frame:
      each camera's place and body size; spawned ranks receive the fitted buffers);
    * ``fit_statistics``, after training: score standardisation, an untrained model's ActNorm; a
      method whose ``statistics_split`` is ``held_out`` gets the held-out normal clips instead."""
    if not hasattr(method, hook):
        return
    if dm.train_set is None:  # spawned strategies set the datamodule up in other processes
        dm.setup("fit")
    if hook == "fit_statistics" and getattr(method, "statistics_split", "training") == "held_out":
        if dm.val_set is None or not len(dm.val_set):
            raise ConfigError("trajectory.statistics=held_out needs normal training clips held out of training: "
                              "set dataset.val_fraction (e.g. ++dataset.val_fraction=0.1)")
        getattr(method, hook)(dm.val_dataloader())
        return
    getattr(method, hook)(dm.statistics_dataloader())


def calibrate(method, dm, dataset_cfg: dict, seg_len: int) -> dict:
    """The false-alarm-rate calibration ``vadflow-score`` thresholds with: quantiles of the
    scoring pipeline's frame scores on the normal training clips."""
    from vadflow.scoring.calibration import calibrate_method

    if getattr(dm, "train", None) is None:  # spawned strategies set the datamodule up elsewhere
        dm.setup("fit")
    t0 = time.perf_counter()
    cal = calibrate_method(method, dm.train, dataset_cfg, seg_len)
    log.info("calibration: %d normal training frames scored in %.1f s", cal["n_frames"], time.perf_counter() - t0)
    return cal


def evaluate_run(out_dir: Path, dm, protocols: list) -> dict:
    """The run's saved window scores under every protocol: one result per protocol (arrays
    included), the mocodad offsets, and the window counts."""
    saved = np.load(Path(out_dir) / WINDOW_SCORES)
    if dm.test_windows is None:  # spawned strategies set the datamodule up in other processes
        dm.setup()
    index, score = saved["index"], saved["score"]  # de-duplicated by the LightningModule
    train_score = saved["train_score"] if "train_score" in saved.files else np.zeros(0)
    offsets = scoring.mocodad_offsets(protocols, train_score)
    results = scoring.evaluate_windows(dm.test_windows, index, score, protocols, dm.masks_for, dm.name, offsets)
    save_evaluation(out_dir, dm.test_windows, index, score, results, train_score)
    return {"results": results, "score_offsets": offsets, "n_windows": int(dm.test_windows.n),
            "n_train_windows": len(dm.train_set) if dm.train_set is not None else 0, "prepare": dm.prepare_info}


def save_evaluation(out_dir: Path, windows, index: np.ndarray, score: np.ndarray, results: list[dict], train_score: np.ndarray) -> None:
    """De-duplicated window scores with the frames each covers and the training windows' scores
    (everything a protocol needs to re-score the run), and the frame scores of every protocol."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / WINDOW_SCORES, index=index, score=score, clip=windows.clip[index], person=windows.person[index],
             frame=windows.frame[index], first=windows.first[index], span=windows.span[index], train_score=train_score)
    for res in results:
        np.savez(out_dir / f"frame_scores_{res['protocol']}.npz", clips=np.array(res["clips"]), scores=res["frame_scores"], keep=res["keep"])


def scalars(result: dict) -> dict:
    return {k: v for k, v in result.items() if isinstance(v, (int, float, str))}


def metrics_record(cfg_method: dict, dataset_cfg: dict, seed: int, evaluation: dict, **extra) -> dict:
    """metrics.json: the headline protocol at top level, every protocol under ``protocols``."""
    from vadflow.build import trajectory_kind

    results = [scalars(r) for r in evaluation["results"]]
    head = results[0]
    record = {
        "method": cfg_method["name"],
        # a selection set is never read as the test set: its name says which it is
        "dataset": dataset_cfg["name"] + (f":{dataset_cfg['selection']}" if dataset_cfg.get("selection") else ""),
        "protocol": head["protocol"],
        "smoothing": head["smoothing"],
        "seed": seed,
        "auc": head["auc"],
        "auc_raw": head["auc_raw"],
        "auc_macro": head["auc_macro"],
        "n_clips": head["n_clips"],
        "n_frames": head["n_frames"],
        "n_windows": evaluation["n_windows"],
        "n_train_windows": evaluation["n_train_windows"],
        "missing_joints": dataset_cfg.get("missing_joints", "impute"),
        "official_quirks": bool(dataset_cfg.get("official_quirks", False)),
        "short_tracks": dataset_cfg.get("short_tracks", "skip"),
        "track_ends": bool(dataset_cfg.get("track_ends", False)),
        "protocols": {r["protocol"]: r for r in results},
        "prepare": evaluation.get("prepare", {}),
        "trajectory": trajectory_kind(cfg_method),  # the trajectory component: none, flow, frame or stream
        "git_commit": git_commit(),
    }
    record.update(extra)
    return record


def report(record: dict, suffix: str) -> None:
    for res in record["protocols"].values():
        print(scoring.format_result(res, record["dataset"]) + suffix)


def run_figures(out_dir: Path, dm, record: dict, n_clips: int = 3) -> dict[str, dict]:
    """``figures/``: per protocol, the ROC (its AUC in the legend) and the score over time of the
    ``n_clips`` clips with the most abnormal frames (frames the protocol leaves out greyed)."""
    from vadflow.plots import evaluation_figures

    if dm.test_windows is None:
        dm.setup()
    return {protocol: evaluation_figures(out_dir, dm.masks_for(protocol), protocol, record["dataset"], n_clips=n_clips)
            for protocol in record["protocols"]}
