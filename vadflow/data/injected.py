"""A selection set with known anomalies, made from real normal clips held out of training.

Choosing a default on a dataset's test labels would tune on the test set, and the synthetic data
differs from real tracks (its rule ranked ``trajectory=frame`` last, while HR-Avenue and PoseLift
favour it). This set sits between the two: real poses, real cameras, real detector noise, and
anomalies whose frames are known because they are made here.

``dataset.selection=injected`` (with ``dataset.val_fraction > 0``) replaces the test split by the
normal training clips held out of training, in which half the windowable tracks (drawn at random)
carry one event of 1 to 2 windows, alternately global and pose:

* global (where, how big, how fast): ``close`` (the body grows 1.8x about its feet: near the
  camera), ``dash`` (the body slides sideways at 0.15 body heights per frame, several times a
  walking pace), ``offpath`` (the body is lifted or lowered by 30 % of the frame height, its size
  kept: somewhere the camera's perspective puts nobody of that size);
* pose: ``flail`` (arms swing 90 degrees about the shoulders, legs half as much about the hips,
  one cycle per 8 frames), ``fall`` (the skeleton tips over about its feet by 80 degrees).

Events ramp in and out over a few frames (the synthetic generator's cosine ramp). A frame is
abnormal from the event's first to its last frame. Clip names get the suffix ``_injected`` (the
camera id stays in front), so no clip list or keep-mask of the real test split applies to them.
The draw depends on ``seed`` only, so every run of an experiment scores the same set.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from vadflow.data.prepare_arrays import PreparedSplit
from vadflow.data.synthetic import event_weight
from vadflow.data.types import ConfigError

GLOBAL_KINDS = ("close", "dash", "offpath")
POSE_KINDS = ("flail", "fall")
KINDS = GLOBAL_KINDS + POSE_KINDS

# OpenPose-18 joints (prepare_arrays.OPENPOSE_ORDER): arm chains hang from a shoulder, leg chains from a hip
ARMS = ((2, (3, 4)), (5, (6, 7)))
LEGS = ((8, (9, 10)), (11, (12, 13)))
GROWTH, DASH_SPEED, OFFPATH_SHIFT = 1.8, 0.15, 0.30  # body size factor, body heights per frame, frame heights
FLAIL_ANGLE, FLAIL_PERIOD, FALL_ANGLE = np.pi / 2, 8.0, np.deg2rad(80.0)
SUFFIX = "_injected"


def check_selection(selection, val_fraction, contamination, kinds=None, event_len=None) -> None:
    """The dataset keys that make a selection set: one line naming the mistake."""
    if event_len is not None and (not selection or isinstance(event_len, bool) or not isinstance(event_len, int) or event_len < 2):
        raise ConfigError(f"dataset.selection_event_len={event_len}: it sets the injected events' length (a whole number "
                          ">= 2 frames) and needs dataset.selection=injected")
    unknown = [k for k in (kinds or ()) if k not in KINDS]
    if unknown or (kinds is not None and not len(kinds)):
        raise ConfigError(f"dataset.selection_kinds={list(kinds)}: choose some of {', '.join(KINDS)}")
    if selection not in (None, "injected"):
        raise ConfigError(f"dataset.selection={selection!r} is not one of null, injected")
    if selection and not float(val_fraction or 0.0) > 0:
        raise ConfigError("dataset.selection=injected scores normal clips held out of training: set dataset.val_fraction (e.g. dataset.val_fraction=0.2)")
    if selection and contamination is not None:
        raise ConfigError("dataset.selection=injected and dataset.contamination both replace the test set: choose one")


def _feet_and_height(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the bottom centre of the body (x mean, lowest y) and its height in pixels."""
    feet = np.stack([xy[..., 0].mean(1), xy[..., 1].max(1)], -1)
    height = np.maximum(xy[..., 1].max(1) - xy[..., 1].min(1), 1.0)
    return feet, height


def _rotate(xy: np.ndarray, centre: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate points (n, J, 2) about per-frame centres (n, 2) by per-frame angles (n,)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    d = xy - centre[:, None]
    return centre[:, None] + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)


def apply_event(kind: str, xy: np.ndarray, w: np.ndarray, t: np.ndarray, frame_size, rng: np.random.Generator) -> np.ndarray:
    """One track's joints (n, 18, 2) in pixels with an event of weight ``w`` (n,) in [0, 1];
    ``t``: frame numbers. Returns new joints; where ``w`` is 0 they are unchanged."""
    width, height_px = float(frame_size[0]), float(frame_size[1])
    feet, body = _feet_and_height(xy)
    out = xy.copy()
    if kind == "close":
        out = feet[:, None] + (xy - feet[:, None]) * (1.0 + (GROWTH - 1.0) * w)[:, None, None]
    elif kind == "dash":  # towards the wider side, so the body stays in view longer
        side = 1.0 if feet[:, 0].mean() < width / 2 else -1.0
        step = np.diff(t, prepend=t[0]) * DASH_SPEED * body * w
        out[..., 0] += side * np.cumsum(step)[:, None]
    elif kind == "offpath":  # towards the frame's vertical middle, so it stays inside the frame
        side = 1.0 if feet[:, 1].mean() < height_px / 2 else -1.0
        out[..., 1] += side * OFFPATH_SHIFT * height_px * w[:, None]
    elif kind == "flail":
        swing = FLAIL_ANGLE * w * np.sin(2 * np.pi * (t - t[0]) / FLAIL_PERIOD)
        for chains, scale in ((ARMS, 1.0), (LEGS, 0.5)):
            for k, (root, limb) in enumerate(chains):
                sign = 1.0 if k == 0 else -1.0  # the two sides swing in opposite directions
                out[:, limb] = _rotate(xy[:, limb], xy[:, root], sign * scale * swing)
    elif kind == "fall":
        out = _rotate(xy, feet, rng.choice([-1.0, 1.0]) * FALL_ANGLE * w)
    else:
        raise ValueError(f"unknown injected anomaly {kind!r}; choose from {', '.join(KINDS)}")
    return out.astype(xy.dtype)


def _plan(rng: np.random.Generator, frames: np.ndarray, seg_len: int) -> tuple[int, int]:
    """Event rows [lo, hi) of a track: 1 to 2 windows long, anywhere in it."""
    n = len(frames)
    length = int(min(n, rng.integers(seg_len, 2 * seg_len + 1)))
    lo = int(rng.integers(0, n - length + 1))
    return lo, lo + length


def inject_anomalies(split: PreparedSplit, clip_ids, seg_len: int, frame_size, seed: int = 0,
                     share: float = 0.5, kinds=KINDS) -> tuple[PreparedSplit, list[dict]]:
    """The tracks of clips ``clip_ids`` (indices into ``split.clips``) as a labelled test split,
    with one event in a ``share`` of the tracks of at least ``seg_len`` poses. Events alternate
    between global and pose kinds (each drawn uniformly within its family, from ``kinds``).
    Returns the split and one record per event (clip, person, kind, first and last frame)."""
    clip_ids = np.asarray(sorted(set(int(c) for c in clip_ids)), np.int64)
    families = [f for f in (tuple(k for k in GLOBAL_KINDS if k in kinds), tuple(k for k in POSE_KINDS if k in kinds)) if f]
    if not families or set(kinds) - set(KINDS):
        raise ValueError(f"injected anomaly kinds must be some of {', '.join(KINDS)}, got {list(kinds)}")
    rng = np.random.default_rng(seed)
    tracks = np.flatnonzero(np.isin(split.track_clip, clip_ids))
    rows = np.concatenate([np.arange(split.track_ptr[i], split.track_ptr[i + 1]) for i in tracks]) if len(tracks) else np.zeros(0, np.int64)
    kp = split.kp[rows].copy()
    ptr = np.concatenate([[0], np.cumsum(np.diff(split.track_ptr)[tracks])]).astype(np.int64)
    new_clip = {int(c): i for i, c in enumerate(clip_ids)}
    names = [split.clips[c] + SUFFIX for c in clip_ids]
    frames = split.frames[rows]
    masks = {name: np.zeros(0, np.uint8) for name in names}
    for k, i in enumerate(tracks):  # clip length = its last tracked frame + 1
        name = names[new_clip[int(split.track_clip[i])]]
        masks[name] = np.zeros(max(len(masks[name]), int(frames[ptr[k + 1] - 1]) + 1), np.uint8)
    events, n_events = [], 0
    for k, i in enumerate(tracks):
        a, b = ptr[k], ptr[k + 1]
        if b - a < seg_len or rng.random() >= share:
            continue
        kind = str(rng.choice(families[n_events % len(families)]))
        n_events += 1
        lo, hi = _plan(rng, frames[a:b], seg_len)
        t = frames[a:b].astype(np.float64)
        ramp = max(1, (hi - lo) // 6)
        w = event_weight(int(t[-1] - t[0]) + 1, int(t[lo] - t[0]), int(t[hi - 1] - t[0]) + 1, ramp, ramp)[(t - t[0]).astype(np.int64)]
        kp[a:b] = apply_event(kind, kp[a:b], w, t, frame_size, rng)
        name = names[new_clip[int(split.track_clip[i])]]
        masks[name][int(t[lo]) : int(t[hi - 1]) + 1] = 1
        events.append({"clip": name, "person": int(split.track_person[i]), "kind": kind, "first": int(t[lo]), "last": int(t[hi - 1])})
    out = replace(split, kp=kp, vis=split.vis[rows], frames=frames, track_ptr=ptr,
                  track_clip=np.array([new_clip[int(c)] for c in split.track_clip[tracks]], np.int64),
                  track_person=split.track_person[tracks], clips=names, masks=masks,
                  track_source=None if split.track_source is None else np.asarray(split.sources())[tracks],
                  mask_files={})
    return out, events
