"""make bench: speed and memory on HR-ShanghaiTech (needs the data root).

Each stage runs in its own process so its wall time and peak RSS are its own:
  1. prepare from the raw archive (cold, into a fresh cache dir), then the cached load;
  2. training and inference throughput (windows/s) on real batches, for every method
     (``--methods``; each with its experiment preset's loss and optimiser);
  3. STG-NF's official schedule end to end: 8 epochs + test evaluation (``vadflow-train``);
  4. STG-NF's execution paths: fused kernels, eager fp32, eager under bf16 autocast
     (``--paths-only``: this stage alone);
  5. ``vadflow-score`` on one hour of synthetic tracks at 25 fps with 5 people per frame (450,000
     poses as AlphaPose JSON), with the shipped STG-NF model (``--score-only``: this stage alone,
     no data root needed);
  6. ``--epoch-pairs N --methods A B``: only whole training epochs in Lightning's loop, A and B
     alternating N times, each epoch in a fresh process of its own (what a component adds to a
     method's training time; ``--shared-process``: all in this one process);
  7. ``--step-pairs N --methods A+trajectory``: only training steps, the pose model alone and
     with its component in turns on the same N batches (what the component adds to a step).
Run it on an otherwise idle machine: two PyTorch jobs on two cores slow each other down a lot.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from vadflow.config import ROOT, default_path

TARGETS = {"score 1 h of tracks, wall s": 60, "train+eval wall s": 300, "inference windows/s": 20_000, "peak RSS GB (train+eval)": 2.0, "prepare cold s": 90, "prepare cached s": 2}


def run_child(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GB, stdout of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024**2, out


TRAJECTORY_SUFFIXES = {"+trajectory": "flow", "+frame": "frame", "+stream": "stream"}  # --methods stgnf+frame, gmfcvae+stream: with trajectory=flow / frame / stream


def build_method(method: str, dataset: str):
    """The method as its experiment preset (or its config) builds it, with that loss and optimiser
    (``<method>+trajectory`` / ``<method>+frame`` / ``gmfcvae+stream``: with the trajectory
    component, as ``trajectory=flow`` / ``frame`` / ``stream`` trains it)."""
    from vadflow.module import AnomalyModule

    model, optim = method_and_optim(method, dataset)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = AnomalyModule(model, optim).configure_optimizers()["optimizer"] if params else None
    return model, opt


def split_method(method: str) -> tuple[str, str | None]:
    """``stgnf+trajectory`` -> (``stgnf``, ``flow``): the method and its trajectory component, if any."""
    for suffix, name in TRAJECTORY_SUFFIXES.items():
        if method.endswith(suffix):
            return method.removesuffix(suffix), name
    return method, None


def check_names(methods: list[str], dataset: str) -> None:
    """An unknown method or dataset is one line and exit 2, before any data is read."""
    known = {group: sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")) for group in ("method", "dataset")}
    problems = [] if dataset in known["dataset"] else [f"unknown --dataset {dataset!r}; one of {', '.join(known['dataset'])}"]
    problems += [f"unknown method {m!r} in --methods; one of {', '.join(known['method'])}, optionally with {' / '.join(TRAJECTORY_SUFFIXES)}"
                 for m in methods if split_method(m)[0] not in known["method"]]
    if problems:
        refuse(problems[0])


def method_and_optim(method: str, dataset: str):
    """``build_method``'s model, and its optimiser's config (``method.optim``) instead of the optimiser."""
    import hydra
    from hydra import compose, initialize_config_dir

    from vadflow.config import CONF_DIR, to_plain
    from vadflow.build import build_method as build_configured, method_config

    base, kind = split_method(method)
    preset = ROOT / "conf" / "experiment" / base / f"{dataset}.yaml"
    overrides = [f"experiment={base}/{dataset}"] if preset.is_file() else [f"method={base}", f"dataset={dataset}"]
    overrides += [f"trajectory={kind}"] if kind else []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides + ["paths.output_dir=."])
    return build_configured(method_config(cfg), hydra.utils.instantiate(cfg.loss)), to_plain(cfg.method.optim)


def training_datamodule(dataset: str, model):
    """The data module ``vadflow-train`` would give ``model`` (batch 256): with the box trajectory and
    the kept summaries where the model reads them."""
    from vadflow.data.datamodule import PoseDataModule
    from vadflow.methods import needs_trajectory, reads_trajectory_summary

    return PoseDataModule(name=dataset, data_root=os.environ["VADFLOW_DATA"], cache_dir=default_path("cache_dir"), batch_size=256,
                          trajectory_features=needs_trajectory(model), trajectory_summary=reads_trajectory_summary(model))


def throughput(dataset: str, threads: int, steps: int, method: str = "stgnf") -> dict:
    """Training steps (batch 256, the method's optimiser, grad clip) and full-test-set inference, in-process."""
    import lightning as L
    import torch

    from vadflow.methods import needs_trajectory

    torch.set_num_threads(threads)
    L.seed_everything(0, verbose=False)
    model, opt = build_method(method, dataset)
    dm = training_datamodule(dataset, model)
    dm.setup()
    model.train()
    if hasattr(model, "fit_reference"):  # trajectory=frame: each camera's reference, before training as vadflow-train does
        model.fit_reference(dm.statistics_dataloader(max_windows=4096))
    if needs_trajectory(model):  # the standardised score needs its training statistics
        model.fit_statistics(dm.statistics_dataloader(max_windows=4096))
    if opt is None:  # nothing to train (DA-Flow's random mode): statistics only
        t0 = time.perf_counter()
        if hasattr(model, "fit_statistics"):
            model.fit_statistics(dm.statistics_dataloader(max_windows=256 * steps))
        train_wps = float("nan")
    else:
        train_wps = _train_steps(model, opt, dm, steps)
    infer_wps = _inference(model, dm)
    return {"train windows/s": train_wps, "inference windows/s": infer_wps, "test windows": dm.test_set.n, "train windows/epoch": len(dm.train_set)}


def flow_paths(dataset: str, threads: int, steps: int) -> dict:
    """STG-NF's execution paths: the fused kernels its ST-GCN coupling networks declare
    (``STGCNBlock.fused_path``; fp32 without autocast only), the eager path in fp32, and the eager
    path under bf16 autocast (the only path bf16 runs). Training and inference windows/s each."""
    import contextlib

    import lightning as L
    import torch

    from vadflow.data.datamodule import PoseDataModule

    torch.set_num_threads(threads)
    dm = PoseDataModule(name=dataset, data_root=os.environ["VADFLOW_DATA"], cache_dir=default_path("cache_dir"), batch_size=256)
    dm.setup()
    out = {}
    for name, fused, bf16 in (("fused fp32", True, False), ("eager fp32", False, False), ("eager bf16 autocast", False, True)):
        L.seed_everything(0, verbose=False)
        model, opt = build_method("stgnf", dataset)
        assert model.flow.fusable, "STG-NF's coupling networks declare the fused path"
        model.flow.fusable = fused
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            model.train()
            train = _train_steps(model, opt, dm, steps)
            infer = _inference(model, dm)
        out[name] = {"train windows/s": train, "inference windows/s": infer}
    return out


MIN_TIMED_S = 10.0  # a child times whole epochs until this much: one ~1 s epoch is mostly the process's warm-up


def epoch_pairs(dataset: str, threads: int, methods: list[str], pairs: int, shared_process: bool = False,
                min_timed_s: float = MIN_TIMED_S) -> dict[str, list[float]]:
    """Seconds per whole training epoch in Lightning's loop (the module, logging and gradient
    clipping of ``vadflow-train``), the methods alternating: a shared machine's speed drifts, so each
    method's epochs interleave with the others' instead of running in separate windows of time.

    Each epoch is timed in a fresh process holding that method alone (``one_epoch``), as a
    ``vadflow-train`` run holds it; rounds alternate the order (A B, B A, ...), so a linear drift
    cancels within two rounds. ``shared_process``: every method in this one process instead, the
    methods' epochs back to back after an untimed round. A run holds one method, so the fresh
    process is what it pays; on HR-ShanghaiTech the two ways agree within the machine's noise
    (``experiments/logs/epoch_pairs_trajectory_2026-12-07.log``)."""
    seconds = {method: [] for method in methods}
    if not shared_process:
        for round_ in range(pairs):
            for method in methods if round_ % 2 == 0 else methods[::-1]:
                _, _, out = run_child([sys.executable, "-m", "vadflow.bench", f"--child-epoch={method}", f"--dataset={dataset}",
                                       f"--threads={threads}", f"--min-timed-seconds={min_timed_s}"])
                seconds[method].append(float(json.loads(out.strip().splitlines()[-1])["epoch s"]))
        return seconds
    runs = {method: _epoch_run(method, dataset, threads) for method in methods}
    for round_ in range(pairs + 1):
        for method, run in runs.items():
            t = _timed_epoch(*run)
            if round_:
                seconds[method].append(t)
    return seconds


def one_epoch(method: str, dataset: str, threads: int, min_timed_s: float = MIN_TIMED_S) -> float:
    """In this process: one untimed epoch (what a run builds once: ActNorm's init, the box table,
    the kept summaries), then the mean seconds of whole epochs, as many as fill ``min_timed_s``
    (one on HR-ShanghaiTech, about ten on HR-Avenue)."""
    run = _epoch_run(method, dataset, threads)
    _timed_epoch(*run)
    timed = [_timed_epoch(*run)]
    while sum(timed) < min_timed_s:
        timed.append(_timed_epoch(*run))
    return sum(timed) / len(timed)


def _epoch_run(method: str, dataset: str, threads: int):
    import logging

    import lightning as L
    import torch

    from vadflow.module import AnomalyModule

    torch.set_num_threads(threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    L.seed_everything(1, verbose=False)
    model, optim = method_and_optim(method, dataset)
    return AnomalyModule(model, optim), training_datamodule(dataset, model)


def _timed_epoch(module, dm) -> float:
    import lightning as L

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1, gradient_clip_val=100, gradient_clip_algorithm="norm", limit_val_batches=0)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return time.perf_counter() - t0


def _print_epoch_pairs(seconds: dict[str, list[float]], dataset: str, threads: int, shared_process: bool = False) -> None:
    import statistics

    first = next(iter(seconds))
    how = "alternating in one process" if shared_process else "alternating, each epoch in a fresh process of its own"
    print(f"\nseconds per training epoch on {dataset}, {threads} threads, methods {how}")
    for method, values in seconds.items():
        mean = statistics.mean(values)
        ratio = "" if method == first else f"  {mean / statistics.mean(seconds[first]) - 1:+.1%} against {first}; per pair " + " ".join(
            f"{b / a - 1:+.1%}" for a, b in zip(seconds[first], values))
        print(f"  {method:18s} {mean:7.2f} s ({' '.join(f'{v:.2f}' for v in values)}){ratio}")


def step_pairs(dataset: str, threads: int, method: str, steps: int) -> dict[str, list[float]]:
    """Milliseconds of training steps (forward, backward, gradient clipping, optimiser step) of a
    method with a trajectory component: on each batch, one step of its pose model alone
    (``model.pose.loss``) and one of the whole model, in turns (the order flips every batch), in
    this one process. Each pair sees the same batch and the same moment of the machine, so the
    difference is what the component adds to a step, free of the drift that whole epochs in
    separate processes carry; data loading and Lightning's loop are left out of both."""
    import torch

    from vadflow.methods.trajectory_aware import TrajectoryAware

    torch.set_num_threads(threads)
    model, opt = build_method(method, dataset)
    if not isinstance(model, TrajectoryAware) or opt is None:
        _refuse_step_pairs(method)
    dm = training_datamodule(dataset, model)
    dm.setup()
    model.train()
    params = list(model.parameters())

    kinds = {"pose model alone": model.pose.loss, "with the component": model.loss}
    ms = {kind: [] for kind in kinds}
    warm_up = 10  # ActNorm's init, the kept summaries' first look-ups, the allocator
    for i, batch in enumerate(_batches(dm, steps + warm_up)):
        order = list(kinds.items()) if i % 2 == 0 else list(kinds.items())[::-1]
        for kind, loss_of in order:
            t0 = time.perf_counter()
            _train_step(loss_of, batch, opt, params)
            if i >= warm_up:
                ms[kind].append(1e3 * (time.perf_counter() - t0))
    return ms


def refuse(problem: str) -> NoReturn:
    """A request the bench cannot measure: one line, exit 2, before anything is measured."""
    print(f"bench: {problem}", file=sys.stderr)
    raise SystemExit(2)


def _refuse_step_pairs(method: str) -> NoReturn:
    refuse(f"--step-pairs needs a pose method wrapped with a trained trajectory component (<method>+trajectory), got {method!r}")


def _batches(dm, n: int):
    """``n`` training batches, the loader restarted as often as needed."""
    while n > 0:
        for batch in dm.train_dataloader():
            if n == 0:
                return
            n -= 1
            yield batch


def _print_step_pairs(ms: dict[str, list[float]], method: str, dataset: str, threads: int) -> None:
    import statistics

    (alone, a), (joined, b) = ms.items()
    print(f"\nms per training step of {method} on {dataset}, {threads} threads, {len(a)} batches, each stepped both ways in turns")
    print(f"  {alone:20s} mean {statistics.mean(a):6.2f}  median {statistics.median(a):6.2f}")
    print(f"  {joined:20s} mean {statistics.mean(b):6.2f}  median {statistics.median(b):6.2f}  "
          f"{statistics.mean(b) / statistics.mean(a) - 1:+.1%} (median of the per-batch differences {statistics.median(y - x for x, y in zip(a, b)):+.2f} ms)")


def _train_steps(model, opt, dm, steps: int) -> float:
    batches = list(_batches(dm, steps + 5))
    params = list(model.parameters())
    for b in batches[:5]:  # warm-up (ActNorm init, allocator)
        _train_step(model.loss, b, opt, params)
    t0 = time.perf_counter()
    for b in batches[5:]:
        _train_step(model.loss, b, opt, params)
    return steps * 256 / (time.perf_counter() - t0)


def _train_step(loss_of, batch, opt, params) -> None:
    """One step as ``vadflow-train`` takes it: gradients zeroed, backward, norm clipped at 100, optimiser step."""
    import torch

    opt.zero_grad()
    loss_of(batch)["loss"].backward()
    torch.nn.utils.clip_grad_norm_(params, 100)
    opt.step()


def _inference(model, dm) -> float:
    import torch

    model.eval()
    n = dm.test_set.n
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, 4096):
            idx = list(range(start, min(n, start + 4096)))
            model.score(dm.test_set.__getitems__(idx))
    return n / (time.perf_counter() - t0)


def write_hour_of_tracks(folder: Path, poses: int = 450_000, clip_len: int = 7500) -> dict:
    """Synthetic test clips of 5 minutes (at 25 fps) with about 5 people per frame, written as
    AlphaPose JSON until ``poses`` poses: 1 h x 25 fps x 5 people = 450,000."""
    from vadflow.data.synthetic import export_clips, generate_synthetic

    total, frames, seed = 0, 0, 0
    while total < poses:
        _, test = generate_synthetic(seed=1000 + seed, n_train_clips=0, n_test_clips=1, clip_len=clip_len, people_per_clip=(170, 190))
        for t in test.tracks:
            t.clip = f"camera_{seed:02d}"
        test.masks = {}
        export_clips(folder, test)
        total += sum(len(t.frames) for t in test.tracks)
        frames += clip_len
        seed += 1
    return {"poses": total, "frames": frames, "clips": seed, "people per frame": total / frames}


def score_hour(threads: int, ckpt: str = "stgnf") -> dict:
    """Wall time of the ``vadflow-score`` command (imports included) on an hour of tracks."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        info = write_hour_of_tracks(Path(tmp))
        wall, rss, _ = run_child([str(bin_dir / "vadflow-score"), "--ckpt", ckpt, str(Path(tmp) / "tracks"), "--out", str(Path(tmp) / "scores"),
                                  "--threads", str(threads)])
        summary = json.loads((Path(tmp) / "scores" / "summary.json").read_text())
    return {"score 1 h of tracks, wall s": wall, "  poses scored": info["poses"], "  windows scored": summary["n_windows"],
            "  clips (5 min each)": info["clips"], "  people per frame (synthetic)": round(info["people per frame"], 2),
            "  hours at 25 fps x 5 people": round(info["poses"] / (25 * 3600 * 5), 3), "peak RSS GB (score)": rss,
            **{f"  {k} s": float(v) for k, v in summary["timings_s"].items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hr_shanghaitech")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--methods", nargs="+", default=["stgnf", "stgnf+trajectory", "stgnf+frame", "daflow", "dsnf", "gmfcvae", "msgflow"],
                        help="methods to time; <method>+trajectory / <method>+frame / gmfcvae+stream adds the trajectory component (trajectory=flow / frame / stream)")
    parser.add_argument("--skip-full", action="store_true", help="skip the 8-epoch end-to-end run")
    parser.add_argument("--skip-prepare", action="store_true", help="skip the cold/cached prepare timings")
    parser.add_argument("--score-only", action="store_true", help="only the vadflow-score hour (synthetic data, no data root needed)")
    parser.add_argument("--paths-only", action="store_true", help="only STG-NF's fused / eager / bf16-autocast paths (needs the data root)")
    parser.add_argument("--epoch-pairs", type=int, default=0, metavar="N",
                        help="only: N rounds of one whole training epoch per method, alternating, each in a fresh process (the first method is the baseline)")
    parser.add_argument("--shared-process", action="store_true", help="with --epoch-pairs: every method in this one process (the earlier way)")
    parser.add_argument("--child-throughput", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--step-pairs", type=int, default=0, metavar="N",
                        help="only: N batches, each one training step of the pose model alone and one with its trajectory component, in turns, in one process (--methods: e.g. stgnf+trajectory)")
    parser.add_argument("--min-timed-seconds", type=float, default=None,
                        help=f"with --epoch-pairs: each fresh process times whole epochs until this many seconds, their mean its figure (default {MIN_TIMED_S:g})")
    parser.add_argument("--child-epoch", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score_only:
        _print_results(score_hour(args.threads), f"vadflow-score on synthetic tracks, shipped STG-NF, {args.threads} threads")
        return
    if "VADFLOW_DATA" not in os.environ:
        raise SystemExit("bench: set VADFLOW_DATA to the datasets folder (the Makefile does when ../shared/datasets exists)")
    if args.child_throughput:
        print(json.dumps(throughput(args.dataset, args.threads, args.steps, args.child_throughput)))
        return
    if args.child_epoch:
        print(json.dumps({"epoch s": one_epoch(args.child_epoch, args.dataset, args.threads, args.min_timed_seconds or 0.0)}))
        return
    check_names(args.methods, args.dataset)
    for flag, given in (("--shared-process", args.shared_process), ("--min-timed-seconds", args.min_timed_seconds is not None)):
        if given and not args.epoch_pairs:
            refuse(f"{flag} applies to --epoch-pairs only")
    if args.shared_process and args.min_timed_seconds is not None:
        refuse("--min-timed-seconds applies to fresh processes, not --shared-process")
    if args.step_pairs and args.epoch_pairs:
        refuse("--step-pairs and --epoch-pairs are two measurements: give one")
    if args.step_pairs:
        for method in args.methods:  # every name before anything is measured
            if split_method(method)[1] != "flow":
                _refuse_step_pairs(method)
        for method in args.methods:
            _print_step_pairs(step_pairs(args.dataset, args.threads, method, args.step_pairs), method, args.dataset, args.threads)
        return
    if args.epoch_pairs:
        min_timed = MIN_TIMED_S if args.min_timed_seconds is None else args.min_timed_seconds
        seconds = epoch_pairs(args.dataset, args.threads, args.methods, args.epoch_pairs, args.shared_process, min_timed)
        _print_epoch_pairs(seconds, args.dataset, args.threads, args.shared_process)
        return
    if args.child_throughput is None and args.paths_only:
        _print_paths(flow_paths(args.dataset, args.threads, args.steps), args.dataset, args.threads)
        return
    bin_dir = Path(sys.executable).parent
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        if not args.skip_prepare:
            wall, rss, _ = run_child([str(bin_dir / "vadflow-prepare"), f"dataset={args.dataset}", f"paths.cache_dir={cache}", f"threads={args.threads}", "hydra.run.dir=" + cache + "/h1"])
            results["prepare cold s"], results["peak RSS GB (prepare cold)"] = wall, rss
            wall, rss, out = run_child([str(bin_dir / "vadflow-prepare"), f"dataset={args.dataset}", f"paths.cache_dir={cache}", f"threads={args.threads}", "hydra.run.dir=" + cache + "/h2"])
            results["prepare cached s"] = float(out.split("loaded from cache in ")[1].split(" s")[0])
            results["prepare cached process wall s (incl. imports)"] = wall
    # the shared cache for the remaining stages
    run_child([str(bin_dir / "vadflow-prepare"), f"dataset={args.dataset}", f"threads={args.threads}", "hydra.run.dir=/tmp/vadflow-bench-h3"])
    per_method = {}
    for method in args.methods:  # one process each: no method inherits another's allocator state
        _, _, out = run_child([sys.executable, "-m", "vadflow.bench", f"--child-throughput={method}", f"--dataset={args.dataset}",
                               f"--threads={args.threads}", f"--steps={args.steps}"])
        per_method[method] = json.loads(out.strip().splitlines()[-1])
    if "stgnf" in per_method:
        results.update(per_method["stgnf"])
    if not args.skip_full:
        with tempfile.TemporaryDirectory() as run_dir:
            wall, rss, _ = run_child([str(bin_dir / "vadflow-train"), f"experiment=stgnf/{args.dataset}", "logger=none", f"threads={args.threads}",
                                      f"hydra.run.dir={run_dir}", "+trainer.enable_progress_bar=false", "calibrate=false"])  # one command: training + test evaluation
            metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        results["train+eval wall s"] = wall
        results["  of which training s"] = metrics["train_seconds"]
        results["  of which evaluation s"] = metrics["eval_seconds"]
        results["peak RSS GB (train+eval)"] = rss
        results["AUC of that run (mpedrnn protocol)"] = 100 * metrics["protocols"]["mpedrnn"]["auc"]
    results.update(score_hour(args.threads))
    _print_results(results, f"STG-NF on {args.dataset}, {args.threads} threads")

    _print_paths(flow_paths(args.dataset, args.threads, args.steps), args.dataset, args.threads)
    print(f"\nthroughput per method on {args.dataset}, {args.threads} threads (batch 256 training, 4096 inference)")
    print(f"  {'method':10s} {'train windows/s':>16s} {'inference windows/s':>20s}")
    for method, r in per_method.items():
        print(f"  {method:10s} {r['train windows/s']:>16,.0f} {r['inference windows/s']:>20,.0f}")


def _print_paths(paths: dict, dataset: str, threads: int) -> None:
    print(f"\nSTG-NF execution paths on {dataset}, {threads} threads (bf16 autocast always runs the eager path)")
    print(f"  {'path':22s} {'train windows/s':>16s} {'inference windows/s':>20s}")
    for name, r in paths.items():
        print(f"  {name:22s} {r['train windows/s']:>16,.0f} {r['inference windows/s']:>20,.0f}")


def _print_results(results: dict, title: str) -> None:
    print(f"\nvadflow bench: {title}, torch {__import__('torch').__version__}")
    for key, value in results.items():
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            ok = value >= target if "windows/s" in key else value <= target
            verdict = f"   (target {'>=' if 'windows/s' in key else '<='} {target:,}: {'met' if ok else 'NOT met'})"
        print(f"  {key:44s} {value:>12,.2f}{verdict}" if isinstance(value, float) else f"  {key:44s} {value:>12,}{verdict}")


if __name__ == "__main__":
    main()
