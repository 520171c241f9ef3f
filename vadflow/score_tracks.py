"""vadflow-score: where are the anomalies in my own pose tracks?

    vadflow-score --ckpt stgnf tracks/ --out scores/            # a shipped model, by name
    vadflow-score --ckpt runs/train/.../model.ckpt a.json b/ --out scores/ --masks gt/ --render

INPUT is an AlphaPose tracked-person JSON (one clip), an MPED-RNN track folder (one CSV per person:
one clip), or a folder holding either (every JSON file and every folder of CSVs is a clip; a
nested CSV folder ``01/0014`` becomes clip ``01_0014``, as in the MPED-RNN release).

The pipeline is the evaluation's (``vadflow.scoring``), so scores mean the same as in the results
table: the checkpoint's missing-joint handling and window rule, every window (stride 1) scored by
the method, a person's frame score = mean over its windows covering the frame, the frame's score =
max over people (that person *drives* the frame), then smoothing (STG-NF's Gaussian cascade by
default). With ``--masks`` every protocol of the checkpoint's dataset is evaluated as well, by the
evaluator ``vadflow-eval`` uses: ``metrics.json`` and ``frame_scores_<protocol>.npz`` are the same.

Per clip it writes ``<clip>.csv`` (per-frame smoothed and raw score, driving person, people
scored), ``<clip>.json`` (summary and the top anomalous segments: start, end, person, peak score),
``<clip>.png`` (score over time, segments and, with ``--masks``, the ground truth shaded), and with
``--render`` ``<clip>_segments.png`` (the driving person's skeleton across each top segment; joints
coloured by the method's per-joint map, e.g. GMFC-VAE's sample energy). ``summary.json`` lists
every clip.

Threshold: ``--threshold X`` (fixed, on the smoothed score) or ``--far R``: the score exceeded by a
fraction R of frames with people in the normal training data, from the calibration stored in the
checkpoint (``vadflow-train`` stores it; ``vadflow-score --calibrate`` adds it to older ones).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vadflow import scoring
from vadflow.checkpoint import load_method, read_checkpoint, resolve_checkpoint
from vadflow.data.inputs import read_inputs
from vadflow.data.types import DataError
from vadflow.plots import timeline_png
from vadflow.runs import save_evaluation, scalars
from vadflow.scoring.alarms import alarms, top_segments
from vadflow.scoring.calibration import calibrate, calibrate_method, threshold_for_far
from vadflow.scoring.tracks import TrackScoring
from vadflow.track_report import render_segments, write_csv

log = logging.getLogger("vadflow.score")
MAP_LABELS = {"gmfcvae": "GMFC-VAE sample energy"}  # default: the method's per-joint score map


def parse_sigmas(text: str | None) -> tuple[float, ...]:
    """``--sigmas 1,2,3``: Gaussian sigmas applied in turn; default STG-NF's cascade, ``0`` = none."""
    if text is None:
        return scoring.STGNF_SIGMAS
    try:
        return tuple(v for v in (float(t) for t in text.split(",")) if v > 0)
    except ValueError as exc:
        raise DataError(f"--sigmas must be comma-separated numbers, got {text!r}") from exc


def parse_frame_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[x,]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise DataError(f"--frame-size must look like 856x480, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def score_inputs(args) -> dict:
    t0 = time.perf_counter()
    ckpt_path = resolve_checkpoint(args.ckpt)
    ckpt = read_checkpoint(ckpt_path)
    method, method_cfg = load_method(ckpt, ckpt_path)
    dataset_cfg = dict(ckpt.get("dataset") or {})
    sigmas = parse_sigmas(args.sigmas)
    pipe = TrackScoring.for_dataset(method, dataset_cfg, int(method_cfg["model"]["seg_len"]), conf_threshold=args.conf_threshold,
                                    stride=args.stride, sigmas=sigmas, short_tracks=args.short_tracks)
    if args.frame_size:
        pipe.frame_size = parse_frame_size(args.frame_size)
    calibration = ckpt.get("calibration")
    if args.normal:  # the user's own normal footage beats the model's training data for a threshold
        normal_split, _ = read_inputs(args.normal, None, pipe.missing_joints, pipe.conf_threshold)
        calibration = calibrate(pipe, normal_split, f"your normal tracks ({', '.join(args.normal)})")
    threshold, threshold_info = _choose_threshold(args, calibration, pipe)

    timings = {"load model and calibrate": time.perf_counter() - t0}
    t1 = time.perf_counter()
    split, masks = read_inputs(args.inputs, args.masks, pipe.missing_joints, pipe.conf_threshold)
    timings["read and prepare tracks"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    windows, window_scores, results = pipe.run(split, masks, calibration.get("fill") if calibration else None)
    timings["score windows and frames"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"checkpoint": str(ckpt_path), "method": method_cfg["name"], "frame_size": list(pipe.frame_size), "fps": args.fps,
               "window": pipe.seg_len, "stride": pipe.stride, "missing_joints": pipe.missing_joints, "short_tracks": pipe.short_tracks,
               "track_ends": pipe.track_ends, "smoothing": scoring.smoothing_label(sigmas), "threshold": threshold_info, "clips": []}
    if masks:
        summary["protocols"] = evaluate_labelled(out, ckpt, dataset_cfg, windows, window_scores.score, masks, args.stride, args.inputs)
    map_label = MAP_LABELS.get(method_cfg["name"], f"{method_cfg['name']} per-joint score")
    for i, clip in enumerate(results):
        mask = masks.get(clip.clip)
        segments = top_segments(clip, threshold, args.top, args.merge_gap, args.fps) if threshold is not None else []
        info = {
            "clip": clip.clip, "n_frames": len(clip.raw), "n_tracks": clip.n_tracks, "n_tracks_not_scored": clip.n_short_tracks,
            "frames_with_people": int((clip.n_people > 0).sum()),
            "max_score": float(np.nanmax(clip.smoothed)) if len(clip.smoothed) else None,
            "frames_above_threshold": int(alarms(clip, threshold).sum()) if threshold is not None else None,
            "segments": segments,
        }
        if mask is not None and 0 < mask.sum() < len(mask):
            info["auc"] = scoring.roc_auc(mask, clip.smoothed)
            info["auc_note"] = f"frame AUC of this clip, smoothed score ({scoring.smoothing_label(sigmas)})"
        write_csv(out / f"{clip.clip}.csv", clip, threshold, mask)
        (out / f"{clip.clip}.json").write_text(json.dumps({**summary, "clips": None, **info}, indent=2))
        timeline_png(out / f"{clip.clip}.png", clip.smoothed, mask, f"{clip.clip} ({method_cfg['name']})", raw=clip.raw,
                     threshold=threshold, segments=[(s["start"], s["end"]) for s in segments], parts=clip.parts)
        if args.render and segments:
            render_segments(out / f"{clip.clip}_segments.png", method, split, windows, i, segments, args.render_frames, map_label)
        summary["clips"].append({k: v for k, v in info.items() if k != "segments"} | {"n_segments": len(segments)})
    timings["write outputs"] = time.perf_counter() - t1
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    summary["n_windows"] = int(windows.n)
    summary["n_poses"] = int(len(split.frames))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_labelled(out: Path, ckpt: dict, dataset_cfg: dict, windows, score: np.ndarray, masks: dict, stride: int | None,
                      inputs: list[str]) -> dict:
    """Labelled tracks: every protocol of the checkpoint's dataset by the evaluator ``vadflow-eval``
    uses (``metrics.json``, ``frame_scores_<protocol>.npz`` and ``window_scores.npz`` as in a run
    directory). A protocol that needs what the tracks cannot give (mocodad's offset from training
    windows, stgnf_full's official label set) is skipped with a logged reason. The numbers are
    named after the inputs, with the dataset whose protocol settings they use: vadflow-score
    cannot tell which dataset the tracks are."""
    protocols, offsets = [], dict(ckpt.get("score_offsets") or {})
    for p in scoring.protocols_of(dataset_cfg):
        if p.kind == "mocodad" and p.name not in offsets:
            log.warning("%s protocol skipped: the checkpoint stores no score offset from training windows (train it again, or use vadflow-eval)", p.name)
        elif p.name == "stgnf_full":
            log.warning("stgnf_full protocol skipped: it needs the official full label set (use vadflow-eval)")
        else:
            protocols.append(p)
    if not protocols:
        return {}
    unlabelled = sorted(set(windows.clip.tolist()) - set(masks))
    if unlabelled:
        log.warning("%d clip(s) without a mask are scored but left out of the protocols' AUCs: %s", len(unlabelled),
                    ", ".join(unlabelled[:10]) + (" ..." if len(unlabelled) > 10 else ""))
    index = np.arange(windows.n)
    name = f"{', '.join(inputs)} ({dataset_cfg.get('name', '?')} protocol settings)"
    results = scoring.evaluate_windows(windows, index, score, protocols, masks, name, offsets)
    save_evaluation(out, windows, index, score, results, np.zeros(0))
    metrics = {"tracks": list(inputs), "protocol_settings_of": dataset_cfg.get("name"), "stride": stride,
               "protocols": {r["protocol"]: scalars(r) for r in results}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for res in results:
        print(scoring.format_result(res, name))
    return metrics["protocols"]


def _choose_threshold(args, calibration: dict | None, pipe: TrackScoring) -> tuple[float | None, dict]:
    if args.threshold is not None:
        return float(args.threshold), {"mode": "fixed", "value": float(args.threshold)}
    if calibration is None:
        log.warning("the checkpoint has no calibration: no threshold, no segments (pass --threshold X, --normal TRACKS, or add one with --calibrate)")
        return None, {"mode": "none"}
    if [float(s) for s in pipe.sigmas] != calibration["sigmas"] or pipe.stride != calibration["stride"] \
            or pipe.short_tracks != calibration.get("short_tracks", "skip"):
        log.warning("smoothing, stride or short-track option differ from the calibration's: the false-alarm rate will not hold")
    value = threshold_for_far(calibration, args.far)
    return value, {"mode": "calibrated", "value": value, "far": args.far, "calibrated_on": calibration["source"],
                   "n_calibration_frames": calibration["n_frames"]}


def calibrate_checkpoint(args) -> Path:
    """``--calibrate``: score the checkpoint's own training data and store the calibration."""
    from vadflow.data.cache import load_prepared

    ckpt_path = resolve_checkpoint(args.ckpt)
    ckpt = read_checkpoint(ckpt_path)
    if "dataset" not in ckpt:
        raise DataError(f"{ckpt_path}: --calibrate needs a vadflow checkpoint (it names its training dataset)")
    method, method_cfg = load_method(ckpt, ckpt_path)
    ds = ckpt["dataset"]
    train, _, _ = load_prepared(ds["name"], args.data_root, args.cache_dir, ds.get("missing_joints", "impute"),
                                ds.get("conf_threshold", 0.0), ds.get("synthetic"),
                                fix_train_frame_offset=bool(ds.get("fix_train_frame_offset", False)))
    sigmas = parse_sigmas(args.sigmas)
    ckpt["calibration"] = calibrate_method(method, train, ds, int(method_cfg["model"]["seg_len"]), args.stride or 1, sigmas)
    target = Path(args.out) if args.out else ckpt_path
    torch.save(ckpt, target)
    cal = ckpt["calibration"]
    print(f"calibrated {ckpt_path} on {cal['n_frames']} frames of {cal['source']}: threshold at 1% false alarms "
          f"{threshold_for_far(cal, 0.01):.4g}, at 0.1% {threshold_for_far(cal, 0.001):.4g} -> {target}")
    return target


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vadflow-score", description="Score your own pose tracks with a trained vadflow model.",
                                 epilog="Example: vadflow-score --ckpt stgnf tracks/ --out scores/ --render")
    ap.add_argument("inputs", nargs="*", help="AlphaPose JSON files, MPED-RNN track folders, or folders of either")
    ap.add_argument("--ckpt", default="stgnf", help="checkpoint file, or a shipped model name (stgnf, daflow, dsnf, gmfcvae, msgflow)")
    ap.add_argument("--out", default="scores", help="output folder")
    ap.add_argument("--frame-size", default=None, help="WIDTHxHEIGHT of the videos in pixels (default: the checkpoint's dataset)")
    ap.add_argument("--conf-threshold", type=float, default=None, help="AlphaPose joints at or below this confidence count as missing")
    ap.add_argument("--masks", default=None, help="folder of <clip>.npy ground-truth masks (shaded in the plots, AUC per clip)")
    ap.add_argument("--threshold", type=float, default=None, help="fixed threshold on the smoothed score")
    ap.add_argument("--far", type=float, default=0.01, help="false-alarm rate on normal frames (the model's training data, or --normal) for the calibrated threshold")
    ap.add_argument("--sigmas", default=None, help="smoothing: comma-separated Gaussian sigmas in frames, applied in turn (default 1,2,3,4,5,6; 0 = none)")
    ap.add_argument("--stride", type=int, default=None, help="window stride (default the checkpoint's test stride, 1: every window)")
    ap.add_argument("--short-tracks", default=None, choices=["skip", "reflect", "edge"],
                    help="tracks shorter than a window: skip, or score one padded window each (default: as the checkpoint was evaluated)")
    ap.add_argument("--normal", action="append", default=None, metavar="TRACKS",
                    help="your own normal tracks (same formats; repeat for several): calibrate --far on them instead of the checkpoint's")
    ap.add_argument("--top", type=int, default=5, help="top segments kept per clip")
    ap.add_argument("--merge-gap", type=int, default=12, help="join segments closer than this many frames")
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate, for times in seconds")
    ap.add_argument("--render", action="store_true", help="draw the driving person's skeleton over each top segment")
    ap.add_argument("--render-frames", type=int, default=8, help="frames drawn per segment with --render")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: every core available)")
    ap.add_argument("--calibrate", action="store_true", help="compute the threshold calibration on the checkpoint's training data and store it")
    ap.add_argument("--data-root", default=None, help="with --calibrate: data root (default paths.data_root: $VADFLOW_DATA, else data/)")
    ap.add_argument("--cache-dir", default=None, help="with --calibrate: prepare cache (default paths.cache_dir: $VADFLOW_CACHE, else .cache/)")
    return ap


def main(argv=None) -> int:
    from vadflow.cli import friendly_errors
    from vadflow.config import default_path, set_threads

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    with friendly_errors():
        if (args.stride is not None and args.stride < 1) or args.top < 1 or args.fps <= 0:
            raise DataError("--stride and --top must be >= 1 and --fps > 0")
        if args.calibrate:
            args.data_root = args.data_root or default_path("data_root")
            args.cache_dir = args.cache_dir or default_path("cache_dir")
            calibrate_checkpoint(args)
            return 0
        if not args.inputs:
            raise DataError("no INPUT given (AlphaPose JSON files, MPED-RNN track folders, or folders of either)")
        summary = score_inputs(args)
        _print_summary(summary, Path(args.out))
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    th = summary["threshold"]
    th_text = {"fixed": lambda: f"fixed threshold {th['value']:.4g}",
               "calibrated": lambda: f"threshold {th['value']:.4g} ({100 * th['far']:g}% false alarms on {th['calibrated_on']})",
               "none": lambda: "no threshold"}[th["mode"]]()
    print(f"{summary['method']} | {len(summary['clips'])} clips, {summary['n_poses']} poses, {summary['n_windows']} windows | "
          f"smoothing {summary['smoothing']} | {th_text} | {summary['seconds']:.1f} s")
    for c in summary["clips"]:
        auc = f" | clip AUC {100 * c['auc']:.1f}" if "auc" in c else ""
        print(f"  {c['clip']}: {c['n_frames']} frames, {c['n_tracks']} tracks ({c['n_tracks_not_scored']} too short to score), "
              f"{c['n_segments']} segments above threshold{auc}")
    print(f"results written to {out}/")


if __name__ == "__main__":
    sys.exit(main())
