"""AUC of each part of a trajectory-aware run's score (pose, trajectory) and of the ways to join
them (likelihood sum, standardised sum, standardised max), from the run's checkpoint: a run with
``trajectory=flow``, or GMFC-VAE with its own global stream (``trajectory=stream``, whose score is
the "likelihood sum" row: pose energy + global energy).

    python -m vadflow.trajectory_parts RUN_DIR [RUN_DIR ...] [--data-root D] [--cache-dir C]

The standardisation uses 20,000 evenly spaced training windows (as ``fit_statistics`` does with
every training window); the mocodad offset comes from the same training windows. The one-sided
rows (:func:`one_sided`) count the trajectory part only for people bigger or faster than their
camera's usual: a diagnosis of whether the density's flagging of small and slow people costs AUC.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vadflow import scoring
from vadflow.build import trajectory_kind
from vadflow.checkpoint import load_method, read_checkpoint
from vadflow.config import datamodule_kwargs, default_path
from vadflow.data.datamodule import PoseDataModule
from vadflow.data.windows import SUMMARY_COLUMNS, trajectory_summary
from vadflow.nn.camera import camera_rows


def parts_of(method, loader) -> dict[str, np.ndarray]:
    """Per window: both parts, the camera, and the body size (log std of y) and log speed of the
    trajectory summary (for the one-sided rows)."""
    out: dict[str, list] = {"index": [], "camera": [], "pose": [], "trajectory": [], "size": [], "speed": []}
    with torch.no_grad():
        for batch in loader:
            parts = method.score_parts(batch)
            summary = trajectory_summary(batch["traj"].float(), batch["norm"].float())
            out["index"].append(batch["index"].numpy())
            out["camera"].append(batch["camera"].numpy())
            for key in ("pose", "trajectory"):
                out[key].append(parts[key].double().numpy())
            out["size"].append(summary[:, SUMMARY_COLUMNS.index("log std y")].double().numpy())
            out["speed"].append(summary[:, SUMMARY_COLUMNS.index("log speed")].double().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def one_sided(split: dict, train: dict) -> np.ndarray:
    """The trajectory part where the window's body size or speed is above its camera's training
    mean (camera z-score > 0), else at most the part's training median: the anomalies of place
    and speed are people too big (close) or too fast, and a density also flags the small and slow."""
    up = np.zeros(len(split["trajectory"]), dtype=bool)
    for key in ("size", "speed"):
        up |= camera_z(split[key], split["camera"], train[key], train["camera"]) > 0
    return np.where(up, split["trajectory"], np.minimum(split["trajectory"], np.median(train["trajectory"])))


def camera_z(values: np.ndarray, cameras: np.ndarray, train: np.ndarray, train_cameras: np.ndarray, min_windows: int = 32) -> np.ndarray:
    """Each value as a z-score against its camera's training windows (all of them for a camera
    with fewer than ``min_windows``, or unseen), split as the camera references are (``camera_rows``)."""
    out = (values - train.mean()) / train.std()
    for slot, rows in camera_rows(torch.from_numpy(train_cameras), min_windows)[1:]:
        ref, own = train[rows.numpy()], cameras == slot
        out[own] = (values[own] - ref.mean()) / max(ref.std(), 1e-6)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data-root", default=default_path("data_root"))
    ap.add_argument("--cache-dir", default=default_path("cache_dir"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for run in map(Path, args.runs):
        ckpt = read_checkpoint(run / "model.ckpt")
        wrapped = trajectory_kind(ckpt["method"]) == "flow"
        if wrapped:
            ckpt["method"]["model"].update(combine="standardised", normalisation_jacobian=False)  # any build; the weights are the same
        method, _ = load_method(ckpt)
        if wrapped:
            method.combine = "likelihood"  # raw parts (pose score, trajectory NLL): each score below is built from them here
        method.eval()
        dm = PoseDataModule(**datamodule_kwargs(ckpt["dataset"], {"data_root": args.data_root, "cache_dir": args.cache_dir}),
                            trajectory_features=True)
        dm.setup("test")
        test, train = parts_of(method, dm.test_dataloader()), parts_of(method, dm.statistics_dataloader(20_000))
        z = lambda key, split: (split[key] - train[key].mean()) / train[key].std()  # noqa: E731
        zc = lambda key, split: camera_z(split[key], split["camera"], train[key], train["camera"])  # noqa: E731
        scores = {
            "pose": (test["pose"], train["pose"]),
            "trajectory": (test["trajectory"], train["trajectory"]),
            "likelihood sum": (test["pose"] + test["trajectory"], train["pose"] + train["trajectory"]),
            "standardised sum": (z("pose", test) + z("trajectory", test), z("pose", train) + z("trajectory", train)),
            "standardised max": (np.maximum(z("pose", test), z("trajectory", test)), np.maximum(z("pose", train), z("trajectory", train))),
            "camera-standardised max": (np.maximum(zc("pose", test), zc("trajectory", test)), np.maximum(zc("pose", train), zc("trajectory", train))),
            "camera-standardised sum": (zc("pose", test) + zc("trajectory", test), zc("pose", train) + zc("trajectory", train)),
        }
        one_test, one_train = one_sided(test, train), one_sided(train, train)
        one_z = lambda values: (values - one_train.mean()) / one_train.std()  # noqa: E731
        scores["trajectory one-sided"] = (one_test, one_train)
        scores["standardised max, one-sided trajectory"] = (np.maximum(z("pose", test), one_z(one_test)), np.maximum(z("pose", train), one_z(one_train)))
        protocols = scoring.protocols_of(ckpt["dataset"])
        row = {name: {r["protocol"]: round(100 * r["auc"], 1) for r in scoring.evaluate_windows(
                   dm.test_windows, test["index"], s, protocols, dm.masks_for, dm.name, scoring.mocodad_offsets(protocols, tr))}
               for name, (s, tr) in scores.items()}
        row["spread (train std)"] = {"pose": float(train["pose"].std()), "trajectory": float(train["trajectory"].std())}
        print(f"{ckpt['dataset']['name']} {run}: {json.dumps(row)}")


if __name__ == "__main__":
    main()
