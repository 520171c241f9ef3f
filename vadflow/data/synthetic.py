"""Synthetic pose tracks: articulated 2-D walkers with scripted anomalies.

The generator stands in for a real pose-track data set (ShanghaiTech / MPED-RNN style) in tests
and smoke runs. It returns the same containers as the readers (``Track`` and ``RawSplit``), with
keypoints in COCO-17 order, in pixels, and a confidence channel of 1.0 (detected) or 0.0 (missing,
stored as ``x = y = 0`` exactly like the MPED-RNN CSVs).

How a person is made
    Every person is a 2-D stick figure driven by joint angles (forward kinematics): hips, knees,
    shoulders and elbows swing with a sinusoidal gait (leg swing, knee bend in the swing phase,
    counter-swinging arms); the pelvis height follows from the legs, which gives the vertical bob
    for free. Proportions, cadence, speed, swing amplitudes, view angle (how much of the body width
    and of the walking direction is seen) and facing (walking left or right) vary per person.
    People walk along roughly straight paths; each scene has a perspective-like ground plane, so a
    person lower in the frame is taller, and a path that drifts towards the camera grows the person.
    Pose-estimator noise is Gaussian jitter proportional to the person's height.

How the data is degraded like real detections
    Tracks start and end at random times and where people leave the frame (some are shorter than
    a 24-frame window); frames are dropped at random (a dropped frame is absent from ``frames``);
    joints go missing at about ``missing_joint_rate`` (face joints 0-4 about twice as often,
    occasionally a whole row); joints that fall outside the image are missing too.

Anomalies (test split only)
    An anomalous event is a change inside one person's track over a frame interval, blended in and
    out smoothly, with normal walking before and/or after where the track allows:

    ``run``     much faster speed and cadence, larger leg/arm swing, bent elbows, forward lean
    ``fall``    the body rotates (forwards or backwards) to horizontal, lies on the ground, gets up
    ``flail``   large erratic arm motion (fighting / waving), little progress
    ``jump``    repeated vertical hops with tucked legs and raised arms
    ``crawl``   torso near horizontal, knees on the ground, slow progress
    ``loiter``  standing still with a tiny sway while others walk

    Global anomalies (``GLOBAL_ANOMALY_KINDS``; the pose stays a normal walk, only where the
    person is, how big or how fast changes; ``conf/dataset/synthetic_global.yaml`` adds them):

    ``close``   the person grows to 1.8-2.6x the height anyone has at that place (too close to the camera)
    ``dash``    2.5-4x the walking speed at an unchanged gait (a cyclist or skater)
    ``offpath`` the person rises 15-30 % of the image height above the band where people walk

    Intensities are randomised and moderate, and normal variation is broad, so a pose-likelihood
    model separates the classes clearly but not perfectly. ``test.masks[clip]`` is a ``uint8``
    array of ``clip_len`` frames, 1 where an event happens while its actor is in view. One or two
    test clips stay fully normal; the train split holds normal walking only and no masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vadflow.data.types import N_JOINTS_COCO, RawSplit, Track

SYNTHETIC_FRAME_SIZE = (856, 480)
ANOMALY_KINDS = ("run", "fall", "flail", "jump", "crawl", "loiter")  # the default: pose anomalies
GLOBAL_ANOMALY_KINDS = ("close", "dash", "offpath")
FPS = 24.0  # speeds (body heights / s) and cadences (strides / s) are defined against this rate

# COCO-17 joint indices
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16

# Sideways offset of each joint from the body's mid-plane, in body heights (left side positive).
LATERAL = np.array(
    [0.0, 0.03, -0.03, 0.065, -0.065, 0.13, -0.13, 0.15, -0.15, 0.15, -0.15, 0.09, -0.09, 0.085, -0.085, 0.08, -0.08]
)
# Head joints relative to the shoulder centre: (along the torso axis, forward of it), body heights.
HEAD = {NOSE: (0.10, 0.04), L_EYE: (0.125, 0.03), R_EYE: (0.125, 0.03), L_EAR: (0.115, -0.005), R_EAR: (0.115, -0.005)}
ANKLE_HEIGHT = 0.04  # the ankle joint sits this far above the sole
# Relative chance of a joint going missing: real detectors lose face joints most, then wrists and
# ankles; the weights average to 1 so the overall rate stays ``missing_joint_rate``.
MISSING_WEIGHT = np.array([1.8] * 5 + [0.4] * 4 + [1.2] * 2 + [0.4] * 4 + [1.2] * 2)
WHOLE_ROW_SHARE = 0.1  # part of the missing-joint budget spent on rows with every joint missing
DEPTH_GAIN = 0.35  # how strongly walking towards the camera moves the feet down the image


@dataclass(frozen=True)
class _Scene:
    horizon: float  # image row where people would shrink to zero height
    scale: float  # person height in px per px of distance below the horizon
    ground: tuple[float, float]  # band of image rows where feet can be
    slope: float  # typical path direction in radians (0 = horizontal, + = towards the camera)
    tilt: float  # camera elevation: how much the body's depth axis shows up as image y


@dataclass(frozen=True)
class _Person:
    facing: int  # +1 walks right, -1 walks left
    size: float  # height relative to the scene's nominal height at the same depth
    limbs: tuple[float, float, float, float, float]  # thigh, shank, torso, upper arm, forearm
    width: float  # how much of the body width is seen (1 = frontal)
    side: float  # how much of the walking direction is seen (1 = pure side view)
    speed: float  # body heights per second
    cadence: float  # strides per second
    hip_amp: float  # thigh swing amplitude (rad)
    knee_amp: float  # extra knee flexion in the swing phase (rad)
    arm_amp: float  # upper-arm swing amplitude (rad)
    elbow: float  # resting elbow flexion (rad)
    lean: float  # forward torso lean (rad)
    heading: float  # path angle away from horizontal (rad)
    ground0: float  # image row of the feet on the first frame
    phase0: float  # gait phase on the first frame
    noise: float  # pose-estimator jitter as a fraction of height


@dataclass(frozen=True)
class _Config:
    clip_len: int
    frame_size: tuple[int, int]
    people: tuple[int, int]
    missing_rate: float
    drop_rate: float
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class _Event:
    kind: str
    start: int  # first clip frame of the event (ramp-in included)
    stop: int  # one past the last clip frame (ramp-out included)
    track_start: int  # the actor's nominal track covers [track_start, track_stop)
    track_stop: int


# --------------------------------------------------------------------------------------------
# Scenes and people
# --------------------------------------------------------------------------------------------


def _sample_scene(rng: np.random.Generator, frame_size: tuple[int, int]) -> _Scene:
    h = float(frame_size[1])
    horizon = h * rng.uniform(0.1, 0.25)
    ground = (h * rng.uniform(0.42, 0.55), h * rng.uniform(0.9, 0.97))
    # choose the scale through the size of the nearest people: 30-45 % of the image height
    scale = h * rng.uniform(0.3, 0.45) / (ground[1] - horizon)
    return _Scene(horizon, scale, ground, rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.25))


def _sample_person(rng: np.random.Generator, scene: _Scene) -> _Person:
    speed = rng.uniform(0.45, 1.15)
    cadence = 0.55 + 0.4 * speed + rng.normal(0.0, 0.06)  # faster walkers also step faster
    stride = speed / cadence  # body heights per stride: longer strides need a wider leg swing
    limbs = tuple(float(v) for v in np.array([0.245, 0.245, 0.29, 0.17, 0.15]) * rng.normal(1.0, 0.04, 5))
    return _Person(
        facing=int(rng.choice([-1, 1])),
        size=rng.normal(1.0, 0.07),
        limbs=limbs,
        width=rng.uniform(0.35, 1.0),
        side=rng.uniform(0.6, 1.0),
        speed=speed,
        cadence=cadence,
        hip_amp=float(np.clip(0.12 + 0.28 * stride + rng.normal(0.0, 0.04), 0.18, 0.6)),
        knee_amp=rng.uniform(0.35, 0.8),
        arm_amp=rng.uniform(0.15, 0.5),
        elbow=rng.uniform(0.1, 0.5),
        lean=rng.uniform(0.0, 0.08),
        heading=float(np.clip(scene.slope + rng.normal(0.0, 0.15), -0.6, 0.6)),
        ground0=rng.uniform(*scene.ground),
        phase0=rng.uniform(0.0, 2 * np.pi),
        noise=rng.uniform(0.004, 0.012),
    )


# --------------------------------------------------------------------------------------------
# Per-frame controls: normal walking, then anomalies edit them inside an event
# --------------------------------------------------------------------------------------------


def _walk_controls(p: _Person, n: int) -> dict[str, np.ndarray]:
    """Per-frame gait controls of plain walking; anomalies reshape these arrays over time."""
    base = {
        "speed": p.speed, "cadence": p.cadence, "hip": p.hip_amp, "knee": p.knee_amp, "knee0": 0.06,
        "arm": p.arm_amp, "elbow": p.elbow, "lean": p.lean,
    }
    controls = {key: np.full(n, value, dtype=np.float64) for key, value in base.items()}
    # additive terms that plain walking never uses
    for key in ("hop", "tuck", "arm_l", "arm_r", "sway", "fall", "lift"):
        controls[key] = np.zeros(n)
    controls["grow"] = np.ones(n)  # height multiplier (global anomaly "close")
    return controls


def _blend(c: dict, key: str, beta: np.ndarray, target) -> None:
    c[key] = (1.0 - beta) * c[key] + beta * target


def _scale(c: dict, key: str, beta: np.ndarray, factor: float) -> None:
    c[key] = c[key] * (1.0 + (factor - 1.0) * beta)


def _wobble(rng: np.random.Generator, t: np.ndarray, f_lo: float, f_hi: float, terms: int = 3) -> np.ndarray:
    """Irregular signal in [-1, 1]: a few sinusoids with random frequencies and phases."""
    freqs = rng.uniform(f_lo, f_hi, terms)
    phases = rng.uniform(0.0, 2 * np.pi, terms)
    weights = rng.uniform(0.5, 1.0, terms)
    waves = weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])
    return waves.sum(0) / weights.sum()


def _anomaly_run(c, beta, t, rng):
    _scale(c, "speed", beta, rng.uniform(1.7, 2.6))
    _scale(c, "cadence", beta, rng.uniform(1.3, 1.7))
    _scale(c, "hip", beta, rng.uniform(1.2, 1.6))
    _scale(c, "knee", beta, rng.uniform(1.5, 2.2))
    _scale(c, "arm", beta, rng.uniform(1.3, 1.9))
    _blend(c, "elbow", beta, rng.uniform(1.1, 1.6))  # runners carry their forearms high
    c["lean"] = c["lean"] + beta * rng.uniform(0.08, 0.2)


def _anomaly_fall(c, beta, t, rng):
    # beta is the fall angle's progress: quick drop, lying still, slower getting up
    c["fall"] = beta * rng.choice([-1.0, 1.0]) * rng.uniform(1.35, 1.65)  # forwards or backwards
    for key in ("speed", "hip", "knee", "arm"):
        _scale(c, key, beta, 0.05)
    # each arm ends up lying roughly along the body or stretched past the head (0 or pi before the
    # body tips over), straightened at the elbow
    for key in ("arm_l", "arm_r"):
        reach = rng.uniform(-0.3, 0.3) + (np.pi if rng.random() < 0.4 else 0.0)
        c[key] = c[key] + beta * reach
    _blend(c, "elbow", beta, rng.uniform(0.0, 0.3))


def _anomaly_flail(c, beta, t, rng):
    amp = rng.uniform(0.8, 2.0)
    raised = rng.uniform(0.0, 1.0)  # fighting and waving keep the arms up on average
    c["arm_l"] = c["arm_l"] + beta * (raised + amp * _wobble(rng, t, 1.2, 3.5))
    c["arm_r"] = c["arm_r"] + beta * (raised + amp * _wobble(rng, t, 1.2, 3.5))
    c["elbow"] = c["elbow"] + beta * rng.uniform(0.3, 1.2) * (1.0 + _wobble(rng, t, 1.0, 3.0)) / 2
    c["lean"] = c["lean"] + beta * 0.12 * _wobble(rng, t, 0.5, 2.0)
    _scale(c, "speed", beta, rng.uniform(0.1, 0.6))
    _scale(c, "cadence", beta, rng.uniform(0.6, 1.0))


def _anomaly_jump(c, beta, t, rng):
    # |sin| is a bouncing-ball profile: 0 on the ground, 1 at the top of each hop
    air = np.abs(np.sin(np.pi * rng.uniform(1.2, 2.2) * t + rng.uniform(0.0, np.pi)))
    c["hop"] = c["hop"] + beta * rng.uniform(0.08, 0.3) * air
    c["tuck"] = c["tuck"] + beta * rng.uniform(0.3, 0.8) * air
    c["arm_l"] = c["arm_l"] + beta * rng.uniform(0.5, 2.5) * air
    c["arm_r"] = c["arm_r"] + beta * rng.uniform(0.5, 2.5) * air
    for key in ("hip", "knee", "arm"):
        _scale(c, key, beta, 0.25)
    _scale(c, "speed", beta, rng.uniform(0.2, 0.7))


def _anomaly_crawl(c, beta, t, rng):
    _blend(c, "lean", beta, rng.uniform(1.15, 1.45))  # torso near horizontal
    _blend(c, "knee0", beta, rng.uniform(1.3, 1.7))  # shins flat on the ground
    _blend(c, "hip", beta, rng.uniform(0.08, 0.2))
    _blend(c, "knee", beta, 0.1)
    _blend(c, "arm", beta, rng.uniform(0.08, 0.2))  # arms hang straight down to the floor
    _blend(c, "elbow", beta, 0.05)
    _scale(c, "speed", beta, rng.uniform(0.1, 0.35))
    _scale(c, "cadence", beta, rng.uniform(0.5, 0.8))


def _anomaly_loiter(c, beta, t, rng):
    for key in ("speed", "hip", "knee", "arm"):
        _scale(c, key, beta, rng.uniform(0.0, 0.08))
    sway = rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * rng.uniform(0.15, 0.5) * t + rng.uniform(0.0, 2 * np.pi))
    c["sway"] = c["sway"] + beta * sway


def _anomaly_close(c, beta, t, rng):
    _scale(c, "grow", beta, rng.uniform(1.8, 2.6))


def _anomaly_dash(c, beta, t, rng):
    _scale(c, "speed", beta, rng.uniform(2.5, 4.0))  # cadence and swings unchanged: the pose is a walk


def _anomaly_offpath(c, beta, t, rng):
    c["lift"] = c["lift"] + beta * rng.uniform(0.15, 0.3)  # fraction of the image height


_ANOMALIES = {
    "run": _anomaly_run, "fall": _anomaly_fall, "flail": _anomaly_flail,
    "jump": _anomaly_jump, "crawl": _anomaly_crawl, "loiter": _anomaly_loiter,
    "close": _anomaly_close, "dash": _anomaly_dash, "offpath": _anomaly_offpath,
}


def event_weight(n: int, start: int, stop: int, ramp_in: int, ramp_out: int) -> np.ndarray:
    """0 outside [start, stop), smooth (cosine) ramps up and down at the ends, 1 in between."""
    i = np.arange(n)
    rise = np.clip((i - start + 1) / ramp_in, 0.0, 1.0)
    fall = np.clip((stop - i) / ramp_out, 0.0, 1.0)
    lin = np.where((i >= start) & (i < stop), np.minimum(rise, fall), 0.0)
    return 0.5 - 0.5 * np.cos(np.pi * lin)


# --------------------------------------------------------------------------------------------
# Kinematics: controls -> body-frame joints -> pixels
# --------------------------------------------------------------------------------------------


def _pose(p: _Person, c: dict) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics in body heights: (sag, up) of shape (n, 17).

    ``sag`` points in the walking direction, ``up`` upwards from the ground under the pelvis.
    Limb angles are measured from straight down, positive = forwards.
    """
    thigh_len, shank_len, torso_len, upper_len, fore_len = p.limbs
    phase = p.phase0 + 2 * np.pi * np.cumsum(c["cadence"]) / FPS
    swing = np.sin(phase)
    # rows: left, right; the legs swing in antiphase and the arms against the legs
    legs = np.stack([swing, -swing])
    thigh = c["hip"] * legs + c["tuck"]
    bend = ((1.0 + np.cos(np.stack([phase, phase + np.pi]) - 0.4)) / 2) ** 2  # knee folds in the swing phase
    shank = thigh - (c["knee0"] + c["knee"] * bend + 2.0 * c["tuck"])
    upper = -c["arm"] * legs + np.stack([c["arm_l"], c["arm_r"]])
    fore = upper + c["elbow"] + 0.3 * c["arm"] * (1.0 - legs) / 2  # elbows bend more on the forward swing

    knee_drop = thigh_len * np.cos(thigh)
    ankle_drop = knee_drop + shank_len * np.cos(shank)
    # the lowest knee or ankle rests on the ground (hop lifts it): this also makes the gait bob
    pelvis = np.maximum(knee_drop, ankle_drop).max(0) + ANKLE_HEIGHT + c["hop"]

    sag = np.zeros((len(phase), N_JOINTS_COCO))
    up = np.zeros_like(sag)
    up[:, [L_HIP, R_HIP]] = pelvis[:, None]
    knee_fwd = thigh_len * np.sin(thigh)
    sag[:, [L_KNE, R_KNE]] = knee_fwd.T
    up[:, [L_KNE, R_KNE]] = (pelvis - knee_drop).T
    sag[:, [L_ANK, R_ANK]] = (knee_fwd + shank_len * np.sin(shank)).T
    up[:, [L_ANK, R_ANK]] = (pelvis - ankle_drop).T

    axis = np.stack([np.sin(c["lean"]), np.cos(c["lean"])])  # torso direction (sag, up)
    ahead = np.stack([np.cos(c["lean"]), -np.sin(c["lean"])])  # where the face points
    shoulder = np.stack([np.zeros_like(pelvis), pelvis]) + torso_len * axis
    sag[:, [L_SHO, R_SHO]] = shoulder[0][:, None]
    up[:, [L_SHO, R_SHO]] = shoulder[1][:, None]
    elbow_sag = shoulder[0] + upper_len * np.sin(upper)
    elbow_up = shoulder[1] - upper_len * np.cos(upper)
    sag[:, [L_ELB, R_ELB]] = elbow_sag.T
    up[:, [L_ELB, R_ELB]] = elbow_up.T
    sag[:, [L_WRI, R_WRI]] = (elbow_sag + fore_len * np.sin(fore)).T
    up[:, [L_WRI, R_WRI]] = (elbow_up - fore_len * np.cos(fore)).T
    for joint, (along, forward) in HEAD.items():
        sag[:, joint] = shoulder[0] + along * axis[0] + forward * ahead[0]
        up[:, joint] = shoulder[1] + along * axis[1] + forward * ahead[1]

    sag += c["sway"][:, None]
    return _rotate(sag, up, c["fall"])


def _rotate(sag: np.ndarray, up: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tip the body over about the ground point under the pelvis (positive = forwards)."""
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return sag * cos + up * sin, up * cos - sag * sin


def _place(p: _Person, scene: _Scene, c: dict, sag: np.ndarray, up: np.ndarray, image_height: float):
    """Body-frame joints -> pixels along the person's path. Returns (xy (n,17,2), root x, height)."""
    walked = (np.cumsum(c["speed"]) - c["speed"][0]) / FPS  # body heights since the first frame
    # height grows with distance below the horizon, so a path towards the camera is exponential
    below = (p.ground0 - scene.horizon) * np.exp(DEPTH_GAIN * p.size * scene.scale * np.sin(p.heading) * walked)
    ground = np.clip(scene.horizon + below, *scene.ground)
    height = p.size * scene.scale * (ground - scene.horizon) * c["grow"]
    ground = ground - c["lift"] * image_height
    step = p.facing * np.cos(p.heading) * c["speed"] * height / FPS
    root = np.concatenate([[0.0], np.cumsum(step[:-1])])

    lateral = p.width * LATERAL
    xy = np.empty(sag.shape + (2,))
    # facing mirrors the whole figure, so the limb swing changes x-sign with the walking direction
    xy[..., 0] = root[:, None] + p.facing * height[:, None] * (p.side * sag + lateral)
    # the depth axis (left/right side of the body) shows up slightly in y under an elevated camera
    xy[..., 1] = ground[:, None] - height[:, None] * (up + scene.tilt * p.facing * lateral)
    return xy, root, height


# --------------------------------------------------------------------------------------------
# Tracks: simulate, cut to the visible span, degrade like a pose detector
# --------------------------------------------------------------------------------------------


def _visible_span(root: np.ndarray, width: int, ref: int) -> tuple[int, int]:
    """Contiguous run of frames around ``ref`` with the person's root inside the image."""
    outside = np.flatnonzero((root < 0) | (root >= width))
    before, after = outside[outside < ref], outside[outside > ref]
    lo = int(before[-1]) + 1 if len(before) else 0
    hi = int(after[0]) if len(after) else len(root)
    return lo, hi


def _degrade(rng, xy: np.ndarray, cfg: _Config) -> tuple[np.ndarray, np.ndarray]:
    """Missing joints, whole missing rows, joints outside the image and dropped frames."""
    n = len(xy)
    w, h = cfg.frame_size
    row_rate = WHOLE_ROW_SHARE * cfg.missing_rate
    joint_rate = np.clip(MISSING_WEIGHT * (cfg.missing_rate - row_rate) / (1.0 - row_rate), 0.0, 0.95)
    missing = rng.random((n, N_JOINTS_COCO)) < joint_rate
    missing |= (rng.random(n) < row_rate)[:, None]
    missing |= (xy[..., 0] < 0) | (xy[..., 0] >= w) | (xy[..., 1] < 0) | (xy[..., 1] >= h)
    kp = np.concatenate([xy, np.ones((n, N_JOINTS_COCO, 1))], axis=2)
    kp[missing] = 0.0

    keep = rng.random(n) >= cfg.drop_rate
    if not keep.any():  # a track always keeps at least one pose
        keep[n // 2] = True
    return np.flatnonzero(keep), kp[keep]


def _apply_event(rng, c: dict, event: _Event, start: int) -> None:
    """Reshape an actor's controls over the event interval, with smooth ramps in and out."""
    n = len(c["speed"])
    ramp_in = int(rng.integers(4, 9) if event.kind == "fall" else rng.integers(6, 13))  # falls are sudden
    ramp_out = int(rng.integers(8, 20))
    shrink = min(1.0, (event.stop - event.start) / (ramp_in + ramp_out))  # short events: shorter ramps
    ramp_in, ramp_out = max(1, int(ramp_in * shrink)), max(1, int(ramp_out * shrink))
    beta = event_weight(n, event.start - start, event.stop - start, ramp_in, ramp_out)
    _ANOMALIES[event.kind](c, beta, np.arange(n) / FPS, rng)


def _simulate_track(rng, scene: _Scene, cfg: _Config, start: int, n: int, event: _Event | None):
    """One person over nominal clip frames [start, start + n). Returns (frames, kp, visible span)."""
    p = _sample_person(rng, scene)
    c = _walk_controls(p, n)
    width = cfg.frame_size[0]
    if event is None:  # anchor a random frame of the path at a random place in the image
        ref, x_ref = int(rng.integers(n)), rng.uniform(0.05, 0.95) * width
    else:  # anchor the event start behind the centre so even a runner stays in view a while
        _apply_event(rng, c, event, start)
        ref, x_ref = event.start - start, width * (0.5 - p.facing * rng.uniform(0.0, 0.3))

    sag, up = _pose(p, c)
    xy, root, height = _place(p, scene, c, sag, up, float(cfg.frame_size[1]))
    shift = x_ref - root[ref]
    xy[..., 0] += shift
    lo, hi = _visible_span(root + shift, width, ref)
    jitter = rng.normal(0.0, 1.0, (hi - lo, N_JOINTS_COCO, 2)) * (p.noise * height[lo:hi])[:, None, None]
    keep, kp = _degrade(rng, xy[lo:hi] + jitter, cfg)
    return start + lo + keep, kp, (start + lo, start + hi)


def _normal_timing(rng, clip_len: int) -> tuple[int, int]:
    """Nominal (start, length) of a walker; some are brief, shorter than a 24-frame window."""
    if rng.random() < 0.15:
        length = int(rng.integers(3, 24))
    else:
        length = int(rng.integers(min(24, clip_len), clip_len + 1))
    length = min(length, clip_len)
    return int(rng.integers(0, clip_len - length + 1)), length


def _plan_event(rng, cfg: _Config) -> _Event:
    """Event interval plus the actor's nominal track, leaving normal walking around it if possible."""
    n = cfg.clip_len
    lo = max(8, n // 10)
    length = int(min(n, rng.integers(lo, max(lo, n // 3) + 1)))
    start = int(rng.integers(0, n - length + 1))
    track_start = max(0, start - int(rng.integers(8, 61)))
    track_stop = min(n, start + length + int(rng.integers(8, 61)))
    return _Event(str(rng.choice(cfg.kinds)), start, start + length, track_start, track_stop)


def _make_clip(rng, name: str, scene: _Scene, cfg: _Config, n_events: int) -> tuple[list[Track], np.ndarray]:
    """All tracks of one clip (ids 1.. by order of appearance) and its frame mask."""
    n_people = max(int(rng.integers(cfg.people[0], cfg.people[1] + 1)), n_events)
    mask = np.zeros(cfg.clip_len, dtype=np.uint8)
    people = []
    for k in range(n_people):
        event = _plan_event(rng, cfg) if k < n_events else None
        if event is None:
            start, length = _normal_timing(rng, cfg.clip_len)
        else:
            start, length = event.track_start, event.track_stop - event.track_start
        frames, kp, (seen_from, seen_to) = _simulate_track(rng, scene, cfg, start, length, event)
        if event is not None:  # label the event only where its actor can be seen
            mask[max(event.start, seen_from) : min(event.stop, seen_to)] = 1
        people.append((frames, kp))
    people.sort(key=lambda fk: fk[0][0])  # stable: ties keep generation order
    tracks = [Track(name, pid, frames, kp) for pid, (frames, kp) in enumerate(people, start=1)]
    return tracks, mask


def _clip_names(n_clips: int, n_scenes: int, digits: int) -> list[tuple[str, int]]:
    """(name, scene index) per clip; clips cycle through the scenes, numbered from 1 per scene."""
    counters = [0] * n_scenes
    names = []
    for i in range(n_clips):
        scene = i % n_scenes
        counters[scene] += 1
        names.append((f"{scene + 1:02d}_{counters[scene]:0{digits}d}", scene))
    return names


def _check_args(n_train_clips, n_test_clips, clip_len, people_per_clip, missing_joint_rate, drop_frame_rate, kinds):
    unknown = sorted(set(kinds) - set(ANOMALY_KINDS + GLOBAL_ANOMALY_KINDS))
    if unknown or not kinds:
        raise ValueError(f"anomaly_kinds must be a non-empty subset of {ANOMALY_KINDS + GLOBAL_ANOMALY_KINDS}, got {kinds!r}")
    if n_train_clips < 0 or n_test_clips < 0:
        raise ValueError("clip counts must be >= 0")
    if clip_len < 16:
        raise ValueError(f"clip_len must be >= 16, got {clip_len}")
    if not 1 <= people_per_clip[0] <= people_per_clip[1]:
        raise ValueError(f"people_per_clip must be (lo, hi) with 1 <= lo <= hi, got {people_per_clip}")
    if not (0.0 <= missing_joint_rate < 1.0 and 0.0 <= drop_frame_rate < 1.0):
        raise ValueError("missing_joint_rate and drop_frame_rate must lie in [0, 1)")


def generate_synthetic(
    seed: int = 0,
    n_train_clips: int = 24,
    n_test_clips: int = 12,
    clip_len: int = 300,
    frame_size: tuple[int, int] = SYNTHETIC_FRAME_SIZE,
    people_per_clip: tuple[int, int] = (2, 5),
    missing_joint_rate: float = 0.1,
    drop_frame_rate: float = 0.02,
    anomaly_kinds: tuple[str, ...] = ANOMALY_KINDS,
) -> tuple[RawSplit, RawSplit]:
    """Build a (train, test) pair of synthetic pose-track splits; deterministic for a seed.

    ``people_per_clip`` is an inclusive range. Train clips hold normal walkers only; all test clips
    but one or two (which stay normal) hold one or two anomalous events of ``anomaly_kinds``.
    """
    _check_args(
        n_train_clips, n_test_clips, clip_len, people_per_clip, missing_joint_rate, drop_frame_rate, anomaly_kinds
    )
    cfg = _Config(
        clip_len, tuple(frame_size), tuple(people_per_clip), missing_joint_rate, drop_frame_rate, tuple(anomaly_kinds)
    )
    rng = np.random.default_rng(seed)
    scenes = [_sample_scene(rng, cfg.frame_size) for _ in range(int(rng.integers(2, 4)))]

    train = RawSplit(tracks=[])
    for name, scene in _clip_names(n_train_clips, len(scenes), 3):
        tracks, _ = _make_clip(rng, name, scenes[scene], cfg, n_events=0)
        train.tracks.extend(tracks)

    # one or two fully normal test clips, but never all of them
    n_normal = min(int(rng.integers(1, 3)), max(n_test_clips - 1, 0))
    normal = set(rng.choice(n_test_clips, n_normal, replace=False).tolist()) if n_normal else set()
    test = RawSplit(tracks=[])
    for i, (name, scene) in enumerate(_clip_names(n_test_clips, len(scenes), 4)):
        n_events = 0 if i in normal else int(rng.integers(1, 3))
        tracks, test.masks[name] = _make_clip(rng, name, scenes[scene], cfg, n_events)
        test.tracks.extend(tracks)
    return train, test


def export_clips(out_dir, split: RawSplit, tracks_dir: str = "tracks") -> list[str]:
    """Write a split as a practitioner's files: ``<tracks_dir>/<clip>_alphapose_tracked_person.json``
    and, where the clip has one, ``masks/<clip>.npy``. Returns the clip names."""
    from pathlib import Path

    from vadflow.data.readers import alphapose_json

    out = Path(out_dir)
    (out / tracks_dir).mkdir(parents=True, exist_ok=True)
    clips = sorted({t.clip for t in split.tracks} | set(split.masks))
    for clip in clips:
        (out / tracks_dir / f"{clip}_alphapose_tracked_person.json").write_text(alphapose_json([t for t in split.tracks if t.clip == clip]))
        if clip in split.masks:
            (out / "masks").mkdir(exist_ok=True)
            np.save(out / "masks" / f"{clip}.npy", split.masks[clip])
    return clips


def main(argv=None) -> int:
    """``python -m vadflow.data.synthetic --export DIR``: synthetic test clips (DIR/tracks, DIR/masks)
    and normal clips (DIR/normal) as AlphaPose JSON, for trying vadflow-score."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vadflow.data.synthetic", description=main.__doc__)
    ap.add_argument("--export", required=True, help="output folder (tracks/ and masks/ are created inside)")
    ap.add_argument("--clips", type=int, default=4, help="number of test clips")
    ap.add_argument("--clip-len", type=int, default=600, help="frames per clip")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    train, test = generate_synthetic(seed=args.seed, n_train_clips=2 * args.clips, n_test_clips=args.clips, clip_len=args.clip_len)
    clips = export_clips(args.export, test)
    normal = export_clips(args.export, train, tracks_dir="normal")
    print(f"wrote {len(clips)} test clips to {args.export}/tracks (AlphaPose JSON) with masks in {args.export}/masks, "
          f"and {len(normal)} normal clips to {args.export}/normal")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
