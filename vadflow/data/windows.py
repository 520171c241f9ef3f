"""Windows over pose tracks, exactly as STG-NF builds them, plus per-window normalisation.

Window rule (official ``split_pose_to_segments``): a window holds the poses at ``T`` consecutive
*positions* of a track (not ``T`` consecutive frame numbers) starting at positions
``0, stride, 2*stride, ...``; it is kept if at most ``max_missing`` of the frame numbers
``s .. s+T-1`` (``s`` = first frame) are absent from it. Its score is written at frame ``s + T//2``.

``official_quirks=True`` reproduces the official off-by-one: the last full window of every track is
never produced (``num = ceil((n - T) / stride)``), so tracks of exactly ``T`` poses give none.

Short tracks (``short_track_windows``, test split only, option ``dataset.short_tracks``): a track
with fewer than ``T`` poses gets no window under the official rule, so its frames are never scored
(70 % of HR-Avenue's test tracks). With ``reflect`` (or ``edge``) a track of ``min_len <= n < T``
poses gets one window holding its ``n`` poses played forwards then backwards (or its last pose
repeated) up to ``T``; the repeated positions are marked not visible, so visibility-aware
normalisation and scoring count each real pose once. Its score covers only the track's own frames.

Track ends (``track_end_windows``, test split only, option ``dataset.track_ends``): a window's
score is written at its centre, so under the official rule the first ``T//2`` and last
``T - T//2 - 1`` poses of every track are no window's centre, and a protocol that scores centres
(``stgnf``) never scores them. With ``track_ends`` each such pose gets one window centred on it:
the real poses the window would hold, padded beyond the track's end the same way (reflected, or
the end pose repeated), the repeats marked not visible. It covers only its real poses' frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from vadflow.data.prepare_arrays import track_of_rows


def window_starts(
    frames: np.ndarray, track_ptr: np.ndarray, seg_len: int, stride: int, max_missing: int = 2, official_quirks: bool = False
) -> np.ndarray:
    """Row index of the first pose of every kept window (vectorised, no loop over windows)."""
    lengths = np.diff(track_ptr)
    span = lengths - seg_len
    if official_quirks:
        counts = np.where(span > 0, -(-span // stride), 0)  # ceil((n - T) / stride), n > T only
    else:
        counts = np.where(span >= 0, span // stride + 1, 0)
    if counts.sum() == 0:
        return np.zeros(0, np.int64)
    track_id = np.repeat(np.arange(len(lengths)), counts)
    first = np.repeat(track_ptr[:-1], counts)
    rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = first + stride * rank
    # frames present inside [s, s + T): count positions with frame < s + T within the same track
    key = track_of_rows(track_ptr).astype(np.int64) * (1 << 32) + frames
    start_key = track_id * (1 << 32) + frames[starts]
    present = np.minimum(np.searchsorted(key, start_key + seg_len, side="left") - starts, seg_len)
    return starts[present >= seg_len - max_missing].astype(np.int64)


def short_track_windows(frames: np.ndarray, track_ptr: np.ndarray, seg_len: int, min_len: int, max_missing: int = 2):
    """(first row, last row) of one padded window per track with ``min_len <= n < seg_len`` poses
    and at most ``max_missing`` frame ids missing between its first and last pose."""
    first, last = track_ptr[:-1].astype(np.int64), track_ptr[1:].astype(np.int64) - 1
    n = last - first + 1
    ok = (n >= max(1, min_len)) & (n < seg_len)
    ok[ok] &= frames[last[ok]] - frames[first[ok]] + 1 - n[ok] <= max_missing
    return first[ok], last[ok]


def track_end_windows(frames: np.ndarray, track_ptr: np.ndarray, seg_len: int, max_missing: int = 2):
    """(first real row, last real row, lead, centre row) of one padded window per track-end pose
    of the tracks of at least ``seg_len`` poses: the first ``T//2`` poses (their window starts
    ``lead`` positions before the track) and the last ``T - T//2 - 1`` (their window runs past its
    end), which no full window is centred on. Kept, as full windows are, if at most ``max_missing``
    frame ids are missing between its first and last real pose."""
    half = seg_len // 2
    first_row, n = track_ptr[:-1].astype(np.int64), np.diff(track_ptr).astype(np.int64)
    long = n >= seg_len
    first_row, n = first_row[long], n[long]
    front = np.arange(half)  # centre position p: the window's position 0 is the track's p - T//2
    back = np.arange(seg_len - half - 1)  # p = n - T + T//2 + 1 + back
    k_front, k_back = len(front), len(back)
    anchor = np.repeat(first_row, k_front + k_back)
    p = np.concatenate([np.broadcast_to(front[None], (len(n), k_front)), n[:, None] - seg_len + half + 1 + back[None]], 1).reshape(-1)
    n_of = np.repeat(n, k_front + k_back)
    lo = np.maximum(p - half, 0)  # the window's real poses: positions lo .. hi of the track
    hi = np.minimum(p - half + seg_len - 1, n_of - 1)
    lead = lo - (p - half)
    first, last = anchor + lo, anchor + hi
    ok = frames[last] - frames[first] - (hi - lo) <= max_missing
    return first[ok], last[ok], lead[ok], (anchor + p)[ok]


def scoring_windows(frames: np.ndarray, track_ptr: np.ndarray, seg_len: int, stride: int, max_missing: int = 2,
                    official_quirks: bool = False, short_tracks: str = "skip", short_min_len: int = 8,
                    track_ends: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first row, last real row, lead, centre row) of every window that is scored: the full
    windows, then with ``short_tracks`` other than ``skip`` one padded window per short track, then
    with ``track_ends`` one padded window per track-end pose. ``lead``: padded positions before the
    first real pose (track ends only); centre row -1: the window's own rule (full windows: position
    T//2; a short track's window: the middle of its frames)."""
    def own_rule(first, last):  # no lead; the centre follows the window's own rule
        return first, last, np.zeros_like(first), np.full_like(first, -1)

    starts = window_starts(frames, track_ptr, seg_len, stride, max_missing, official_quirks)
    kinds = [own_rule(starts, starts + seg_len - 1)]
    if short_tracks != "skip":
        kinds.append(own_rule(*short_track_windows(frames, track_ptr, seg_len, short_min_len, max_missing)))
    if track_ends:
        kinds.append(track_end_windows(frames, track_ptr, seg_len, max_missing))
    return tuple(np.concatenate(column) for column in zip(*kinds))


def full_windows(starts, last, lead, seg_len: int):
    """Which windows hold ``T`` real poses from their first row on (the rest are padded);
    numpy arrays or tensors alike."""
    return (last == starts + seg_len - 1) & (lead == 0)


def padded_positions(starts: torch.Tensor, last: torch.Tensor, seg_len: int, mode: str = "reflect",
                     lead: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (B, T) of windows whose real poses are the rows ``starts .. last``, placed from position
    ``lead`` on (default 0; a full window has ``last = start + T - 1`` and gets ``start .. start + T - 1``),
    and a (B, T) mask of the positions that repeat a pose: those before ``lead`` and after the last real pose."""
    pos = torch.arange(seg_len)[None] - (0 if lead is None else lead[:, None])  # relative to the first real pose
    n = (last - starts + 1)[:, None]
    if mode == "reflect":  # .. 2 1 | 0 1 .. n-1 | n-2 .. 0 1 ..: motion keeps its speed, only its direction flips
        period = (2 * (n - 1)).clamp_min(1)
        k = pos.abs() % period
        idx = torch.where(k < n, k, period - k)
    elif mode == "edge":
        idx = torch.minimum(pos.clamp_min(0), n - 1)
    else:
        raise ValueError(f"short_tracks must be 'skip', 'reflect' or 'edge', got {mode!r}")
    return starts[:, None] + idx, (pos < 0) | (pos >= n)


class WindowBuilder:
    """Gathers and normalises windows from a split's contiguous arrays, a whole batch at a time.

    Normalisation (STG-NF ``normalize_pose``): divide x by the frame width and y by its height,
    subtract the window mean of x and of y, divide both by the window's (population) std of y.
    With ``use_visibility`` the mean and std are taken over detected joints only, so imputed or
    missing joints never move the statistics. Horizontal flip negates normalised x, which equals
    the official flip (x -> -x in pixels before normalising).
    """

    def __init__(self, kp: np.ndarray, vis: np.ndarray, seg_len: int, frame_size, use_visibility: bool = True, pad_mode: str = "reflect"):
        self.kp = torch.from_numpy(np.ascontiguousarray(kp, dtype=np.float32))
        self.seg_len, self.pad_mode = seg_len, pad_mode
        self.vis = torch.from_numpy(np.ascontiguousarray(vis, dtype=bool))
        self.offsets = torch.arange(seg_len)
        self.scale = torch.tensor([float(frame_size[0]), float(frame_size[1])])
        self.use_visibility = use_visibility
        self.row_camera: torch.Tensor | None = None  # (R,) camera index per row: batches then carry the trajectory
        self._row_box: torch.Tensor | None = None  # (R, 4) each row's box (frame_boxes), built on the first such batch
        # batches also carry traj_summary (trajectory_summary of each full window), kept per first row
        # once computed: it depends on the window alone (never flipped), and training reads each window every epoch
        self.keep_summary = False
        self._summary: torch.Tensor | None = None  # (R, N_SUMMARY), valid where _summary_known
        self._summary_known: torch.Tensor | None = None

    def __call__(self, starts: torch.Tensor, flip: torch.Tensor | None = None, dtype=torch.float32, last: torch.Tensor | None = None,
                 lead: torch.Tensor | None = None):
        """``last``: each window's last real row (padded windows); None = full windows. ``lead``:
        padded positions before the first real pose (a track's first poses; None = 0)."""
        x, vis, _, _ = self._windows(starts, flip, dtype, last, lead)
        return x, vis

    def batch(self, starts: torch.Tensor, flip: torch.Tensor | None = None, last: torch.Tensor | None = None,
              lead: torch.Tensor | None = None) -> dict:
        """A method's batch: ``x``, ``vis`` and, with ``row_camera`` set, what the normalisation
        removes (see :func:`trajectory_features`): ``traj`` (B, T, 4), ``norm`` (B, 3) and the
        window's ``camera`` (B,). The trajectory is never flipped: a mirrored scene would put
        people where nobody walks."""
        x, vis, xy, stats = self._windows(starts, flip, torch.float32, last, lead)
        out = {"x": x, "vis": vis}
        if self.row_camera is not None:  # the normalisation's own mean and std: computed once per batch
            out["traj"], out["norm"] = trajectory_features(xy, vis, normalised_over_detected=self.use_visibility, stats=stats,
                                                           boxes=self._boxes(starts) if last is None else None)
            out["camera"] = self.row_camera[starts]
            if self.keep_summary and last is None:
                out["traj_summary"] = self._summaries(starts, out["traj"], out["norm"])
        return out

    def _summaries(self, starts: torch.Tensor, traj: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """(B, N_SUMMARY) :func:`trajectory_summary` of full windows: computed for the windows not
        seen before (each row of the result depends on its window alone), looked up after."""
        if self._summary is None:
            self._summary = torch.zeros(len(self.kp), N_SUMMARY)
            self._summary_known = torch.zeros(len(self.kp), dtype=torch.bool)
        new = ~self._summary_known[starts]
        if bool(new.any()):
            self._summary[starts[new]] = trajectory_summary(traj[new], norm[new])
            self._summary_known[starts[new]] = True
        return self._summary[starts]

    def _boxes(self, starts: torch.Tensor) -> torch.Tensor:
        """(B, T, 4) boxes of full windows, looked up: a row's box depends on that row alone, and
        each row is in up to T training windows. (A padded window hides its repeats from ``vis``,
        so its boxes are computed from the window.)"""
        if self._row_box is None:
            self._row_box = frame_boxes(self.kp / self.scale, self.vis)
        return self._row_box[starts[:, None] + self.offsets]

    def _windows(self, starts, flip, dtype, last, lead=None):
        if last is None:
            rows = starts[:, None] + self.offsets  # (B, T)
            repeated = None
        else:
            rows, repeated = padded_positions(starts, last, self.seg_len, self.pad_mode, lead)
        xy = self.kp[rows].to(dtype) / self.scale.to(dtype)  # (B, T, V, 2)
        vis = self.vis[rows]  # (B, T, V)
        if repeated is not None:
            vis = vis & ~repeated[..., None]
        stats = window_statistics(xy, vis if self.use_visibility else None)
        x = normalize_windows(xy, stats=stats)
        if flip is not None:
            x[:, 0] = torch.where(flip[:, None, None], -x[:, 0], x[:, 0])
        return x, vis, xy, stats


def window_statistics(xy: torch.Tensor, vis: torch.Tensor | None = None, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`normalize_windows` removes: the window mean of (x, y), (B, 1, 1, 2), and the
    (population) std of y, (B,), over detected joints when ``vis`` is given; a std of 0 becomes 1."""
    if vis is None:
        mean = xy.mean(dim=(1, 2), keepdim=True)
        std_y = xy[..., 1].std(dim=(1, 2), unbiased=False)
    else:
        w = vis.to(xy.dtype)[..., None]
        count = w.sum(dim=(1, 2), keepdim=True).clamp_min(1.0)
        mean = (xy * w).sum(dim=(1, 2), keepdim=True) / count
        var_y = (((xy[..., 1:] - mean[..., 1:]) ** 2) * w).sum(dim=(1, 2, 3)) / count.view(-1)
        std_y = var_y.sqrt()
    # a window whose y never varies (one visible joint, synthetic corner cases) must not divide by 0
    return mean, torch.where(std_y > eps, std_y, torch.ones_like(std_y))


def normalize_windows(xy: torch.Tensor, vis: torch.Tensor | None = None, eps: float = 1e-6,
                      stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """(B, T, V, 2) scaled coordinates -> (B, 2, T, V) centred by the mean, scaled by std(y)
    (``stats``: :func:`window_statistics` already computed)."""
    mean, std_y = stats if stats is not None else window_statistics(xy, vis, eps)
    return rearrange((xy - mean) / std_y[:, None, None, None], "b t v xy -> b xy t v").contiguous()


MIN_BOX = 1e-3  # box sides below 0.1 % of the frame (a single visible joint) count as this


def frame_boxes(xy: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """(..., V, 2) scaled joints and (..., V) detections -> (..., 4) box centre x, centre y, log
    width, log height of the detected joints, or of every joint where none is detected."""
    seen = vis | ~vis.any(dim=-1, keepdim=True)
    joints_last = xy.transpose(-1, -2).contiguous()  # (..., 2, V): the reductions run over contiguous memory
    hidden = ~seen[..., None, :]
    big = torch.finfo(xy.dtype).max
    lo = joints_last.masked_fill(hidden, big).amin(-1)
    hi = joints_last.masked_fill(hidden, -big).amax(-1)
    return torch.cat([(lo + hi) / 2, (hi - lo).clamp_min(MIN_BOX).log()], -1)


def trajectory_features(xy: torch.Tensor, vis: torch.Tensor | None = None, normalised_over_detected: bool = True,
                        stats: tuple[torch.Tensor, torch.Tensor] | None = None,
                        boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the person is and how big, per frame, relative to the frame: ``traj`` (B, T, 4) =
    box centre x, centre y, log width, log height of the detected joints (every joint, imputed
    included, on a frame with none detected), with ``xy`` already divided by the frame size; and
    ``norm`` (B, 3) = the window normalisation's mean x, mean y and log std(y) (over detected
    joints, or over all as the normalisation took them; ``stats``: that normalisation's
    :func:`window_statistics`, already computed; ``boxes``: :func:`frame_boxes` of the window, already
    looked up)."""
    if vis is None:
        vis = torch.ones(xy.shape[:3], dtype=torch.bool, device=xy.device)
    traj = boxes if boxes is not None else frame_boxes(xy, vis)
    mean, std_y = stats if stats is not None else window_statistics(xy, vis if normalised_over_detected else None)
    norm = torch.cat([mean.view(-1, 2), std_y.log()[:, None]], 1)
    return traj, norm


# trajectory_summary's columns, in order: the 3 normalisation parameters, the aspect, 6 motion numbers
SUMMARY_COLUMNS = ("mean x", "mean y", "log std y", "aspect", "velocity x", "velocity y", "log speed", "log jitter",
                   "scale rate", "log scale jitter")
N_SUMMARY = len(SUMMARY_COLUMNS)
SUMMARY_EPS = 1e-3  # body heights per frame: below the pose detector's jitter, keeps the logs finite


def trajectory_summary(traj: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """(B, T, 4) box trajectory + (B, 3) normalisation parameters -> (B, 10) summary ``g``."""
    centre, log_w, log_h = traj[..., :2], traj[..., 2], traj[..., 3]
    height = log_h.mean(1).exp()[:, None]
    aspect = (log_w - log_h).mean(1, keepdim=True)
    step = (centre[:, 1:] - centre[:, :-1]) / height[..., None]  # (B, T - 1, 2), body heights per frame
    velocity = step.mean(1)
    speed = (step.norm(dim=-1).mean(1, keepdim=True) + SUMMARY_EPS).log()
    jitter = ((step - velocity[:, None]).norm(dim=-1).mean(1, keepdim=True) + SUMMARY_EPS).log()
    scale_step = log_h[:, 1:] - log_h[:, :-1]
    scale_rate = scale_step.mean(1, keepdim=True)
    scale_jitter = ((scale_step - scale_rate).abs().mean(1, keepdim=True) + SUMMARY_EPS).log()
    return torch.cat([norm, aspect, velocity, speed, jitter, scale_rate, scale_jitter], 1)


def frame_size_of(dataset_cfg: dict) -> tuple[int, int]:
    """The frame size coordinates are divided by: the dataset's, or the official code's 856x480 for
    every dataset under ``official_quirks``."""
    if dataset_cfg.get("official_quirks"):
        return (856, 480)
    return tuple(int(v) for v in dataset_cfg.get("frame_size", (856, 480)))


@dataclass
class ScoringWindows:
    """Every window a split is scored by, and what the protocols need of each: its clip, person,
    the frames it covers (``first .. first + span - 1``) and the frame its score is written to
    (``frame``, the centre). A full window covers ``T`` frames from its first pose (the protocols'
    rule, also across a dropped frame); a padded window of a short track covers its own frames.
    Training, ``vadflow-eval`` and ``vadflow-score`` all build their test windows here."""

    starts: np.ndarray  # (N,) first row
    last: np.ndarray  # (N,) last real row
    lead: np.ndarray  # (N,) padded positions before the first real pose (windows of a track's first poses)
    builder: "WindowBuilder"
    clip: np.ndarray  # (N,) clip name
    person: np.ndarray  # (N,) person id
    track: np.ndarray  # (N,) track index in the split
    first: np.ndarray  # (N,) first frame covered
    span: np.ndarray  # (N,) frames covered
    frame: np.ndarray  # (N,) centre frame
    seg_len: int

    @property
    def n(self) -> int:
        return len(self.starts)

    @classmethod
    def of_split(cls, split, seg_len: int, frame_size, stride: int = 1, max_missing: int = 2, official_quirks: bool = False,
                 short_tracks: str = "skip", short_min_len: int = 8, use_visibility: bool = True,
                 trajectory_features: bool = False, track_ends: bool = False) -> "ScoringWindows":
        from vadflow.data.cameras import row_camera_slots

        starts, last, lead, centre = scoring_windows(split.frames, split.track_ptr, seg_len, stride, max_missing, official_quirks,
                                                     short_tracks, short_min_len, track_ends)
        builder = WindowBuilder(split.kp, split.vis, seg_len, frame_size, use_visibility, pad_mode=short_tracks if short_tracks != "skip" else "reflect")
        if trajectory_features:  # batches carry the box trajectory and camera
            builder.row_camera = torch.from_numpy(row_camera_slots(split.clips, split.track_clip, split.track_ptr))
        track = track_of_rows(split.track_ptr)[starts]
        first, last_frame = split.frames[starts], split.frames[last]
        full = full_windows(starts, last, lead, seg_len)
        own_centre = np.where(full, first + seg_len // 2, (first + last_frame) // 2)
        frame = np.where(centre >= 0, split.frames[np.maximum(centre, 0)], own_centre)
        return cls(starts, last, lead, builder, np.asarray(split.clips)[split.track_clip[track]], split.track_person[track], track, first,
                   np.where(full, seg_len, last_frame - first + 1), frame, seg_len)

    def select(self, keep: np.ndarray) -> "ScoringWindows":
        """The windows where ``keep`` is True (same builder)."""
        arrays = {k: getattr(self, k)[keep] for k in ("starts", "last", "lead", "clip", "person", "track", "first", "span", "frame")}
        return ScoringWindows(builder=self.builder, seg_len=self.seg_len, **arrays)

    def batch(self, index: np.ndarray) -> dict:
        """A method's batch of the windows at ``index`` (full or padded alike)."""
        index = np.asarray(index)
        starts, last = torch.from_numpy(self.starts[index]), torch.from_numpy(self.last[index])
        full = full_windows(self.starts[index], self.last[index], self.lead[index], self.seg_len)
        lead = torch.from_numpy(self.lead[index]) if self.lead[index].any() else None
        batch = self.builder.batch(starts, last=None if full.all() else last, lead=lead)
        batch["index"] = torch.from_numpy(index.astype(np.int64))
        return batch
