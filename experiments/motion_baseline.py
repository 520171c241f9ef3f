"""A diagnostic, not a method: how far do a person's global cues alone go on each dataset?

STG-NF (and every flow here) normalises each window by its own mean and spread, so a window's
score cannot see where the person is, how fast they cross the frame, or how big they are. This
script scores the same test windows by one global cue each, with nothing learned:

* ``speed``: the speed of the skeleton's centre (mean of detected joints), in body heights per
  frame, averaged over the window;
* ``size``: the person's height in pixels (vertical extent of the detected joints, median over
  the window's frames): large = close to the camera.

The frame scores then go through the same protocols as every trained model
(``PoseDataModule.evaluate``). If such a trivial score beats the flows on a dataset, that dataset's
anomalies are largely about what the window normalisation throws away.

    VADFLOW_DATA=../shared/datasets python experiments/motion_baseline.py hr_avenue hr_shanghaitech poselift
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
from hydra import compose, initialize_config_dir

from vadflow.config import CONF_DIR, datamodule_kwargs, to_plain
from vadflow.data.datamodule import PoseDataModule
from vadflow import scoring
from vadflow.scoring import format_result


def _frame_heights(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(W, T) vertical extent of the detected joints in pixels; NaN in frames with fewer than 5
    (too few joints to say how tall the person is)."""
    y = np.where(seen, xy[..., 1], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with no detected joint: all-NaN slices
        height = np.nanmax(y, axis=2) - np.nanmin(y, axis=2)
    return np.where(seen.sum(-1) >= 5, height, np.nan)


def _median_over_frames(height: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a window with no usable frame: NaN
        return np.nanmedian(height, axis=1)


def window_size(kp: np.ndarray, vis: np.ndarray, starts: np.ndarray, seg_len: int) -> np.ndarray:
    """Body height in pixels per window (median over its frames; detected joints only). A window
    with no frame of 5+ detected joints gets the median of the others."""
    rows = starts[:, None] + np.arange(seg_len)
    body = _median_over_frames(_frame_heights(kp[rows], vis[rows]))
    return np.where(np.isfinite(body), body, np.nanmedian(body))


def window_speed(kp: np.ndarray, vis: np.ndarray, starts: np.ndarray, seg_len: int) -> np.ndarray:
    """Mean centre speed over each window, in body heights per frame (detected joints only)."""
    rows = starts[:, None] + np.arange(seg_len)  # (W, T)
    xy, seen = kp[rows], vis[rows]  # (W, T, V, 2), (W, T, V)
    n = seen.sum(-1)
    centre = (xy * seen[..., None]).sum(2) / np.maximum(n, 1)[..., None]  # (W, T, 2)
    body = _median_over_frames(_frame_heights(xy, seen))  # a robust body size per window
    step = np.linalg.norm(np.diff(centre, axis=1), axis=-1)  # (W, T-1)
    ok = (n[:, 1:] > 0) & (n[:, :-1] > 0)
    speed = (step * ok).sum(1) / np.maximum(ok.sum(1), 1)
    return speed / np.where(np.isfinite(body) & (body > 1), body, np.nanmedian(body))


SCORES = {"global-motion (centre speed in body heights/frame)": window_speed,
          "body-size (height in pixels)": window_size}


def main(datasets: list[str]) -> None:
    for name in datasets:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"dataset={name}", "paths.output_dir=."])
        dm = PoseDataModule(**datamodule_kwargs(to_plain(cfg.dataset), to_plain(cfg.paths), 256))
        dm.setup()
        starts = dm.test_set.starts.numpy()
        if dm.test_set.last is not None:
            raise SystemExit("motion_baseline: run with dataset.short_tracks=skip (full windows only)")
        for cue, fn in SCORES.items():
            score = fn(dm.test.kp, dm.test.vis, starts, dm.seg_len)
            protocols = [p for p in scoring.protocols_of(to_plain(cfg.dataset)) if p.kind != "mocodad"]  # nothing trained: no offset
            for res in scoring.evaluate_windows(dm.test_windows, np.arange(len(starts)), score, protocols, dm.masks_for, name):
                print(format_result(res, name) + f" | {cue} baseline (nothing learned)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["hr_avenue"])
