"""Robustness experiments (DA-Flow's claims): noisy keypoints and contaminated training sets.

* ``add_keypoint_noise``: Gaussian noise on every detected joint, std given as a fraction of the
  frame height (both axes), deterministic for a seed. Undetected joints stay undetected.
* ``contaminate``: mixes abnormal windows into the training set so that they make up a given
  fraction of it. They come only from a fixed subset of the abnormal test clips, and those clips
  are then left out of the evaluation (of every protocol, even at fraction 0, so all fractions are
  scored on the same clips). If the held-out clips do not hold enough abnormal windows, normal
  training windows are subsampled instead, so the fraction is exact; the sizes are logged.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from vadflow.data.prepare_arrays import PreparedSplit, track_of_rows

log = logging.getLogger("vadflow.data")


def add_keypoint_noise(split: PreparedSplit, std: float, frame_size, seed: int) -> PreparedSplit:
    if std <= 0:
        return split
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, std * float(frame_size[1]), size=split.kp.shape).astype(np.float32)
    return replace(split, kp=split.kp + noise * split.vis[..., None])


def abnormal_window_mask(split: PreparedSplit, starts: np.ndarray, seg_len: int) -> np.ndarray:
    """True where the window's centre frame is labelled abnormal."""
    track = track_of_rows(split.track_ptr)[starts]
    clip_names = np.asarray(split.clips)[split.track_clip[track]]
    centre = split.frames[starts] + seg_len // 2
    out = np.zeros(len(starts), bool)
    for i, (clip, frame) in enumerate(zip(clip_names, centre)):
        mask = split.masks.get(str(clip))
        out[i] = mask is not None and frame < len(mask) and bool(mask[frame])
    return out


def contaminate(train_starts: np.ndarray, test: PreparedSplit, test_starts_pool: np.ndarray, fraction: float,
                clip_fraction: float, seg_len: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Returns (train starts to keep, test-split starts of the contamination windows, held-out clips).

    ``test_starts_pool``: candidate windows of the test split (e.g. at the training stride).
    ``clip_fraction`` of the clips with abnormal frames are held out (chosen with ``seed``, not the
    run seed, so every run of an experiment holds out the same clips)."""
    if not 0 <= fraction < 1 or not 0 < clip_fraction <= 1:
        raise ValueError(f"contamination fraction must be in [0, 1) and clip fraction in (0, 1], got {fraction}, {clip_fraction}")
    abnormal_clips = sorted(c for c, m in test.masks.items() if np.any(m))
    n_hold = max(1, int(round(clip_fraction * len(abnormal_clips))))
    held = sorted(np.random.default_rng(seed).permutation(abnormal_clips)[:n_hold].tolist())
    track = track_of_rows(test.track_ptr)[test_starts_pool]
    in_held = np.isin(np.asarray(test.clips)[test.track_clip[track]], held)
    pool = test_starts_pool[in_held & abnormal_window_mask(test, test_starts_pool, seg_len)]
    if fraction == 0:
        return train_starts, pool[:0], held
    rng = np.random.default_rng(seed + 1)
    need = int(round(fraction / (1 - fraction) * len(train_starts)))
    if need <= len(pool):
        contam = np.sort(rng.choice(pool, need, replace=False))
        keep = train_starts
    else:  # not enough abnormal windows: fewer normal ones, same fraction
        contam = pool
        n_normal = int(round(len(pool) * (1 - fraction) / fraction))
        keep = np.sort(rng.choice(train_starts, n_normal, replace=False))
    log.info("contamination %.0f%%: %d abnormal windows from %d held-out clips + %d normal windows (of %d)",
             100 * fraction, len(contam), len(held), len(keep), len(train_starts))
    return keep, contam, held
