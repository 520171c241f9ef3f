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
     alternating N times in one process (what a component adds to a method's training time).
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
        print(f"bench: {problems[0]}", file=sys.stderr)
        raise SystemExit(2)


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


def epoch_pairs(dataset: str, threads: int, methods: list[str], pairs: int) -> dict[str, list[float]]:
    """Seconds per whole training epoch in Lightning's loop (the module, logging and gradient
    clipping of ``vadflow-train``), the methods alternating in one process: a shared machine's speed
    drifts, so each method's epochs interleave with the others' instead of running in separate
    windows of time. A first untimed round builds what a run builds once (ActNorm's init, the box table)."""
    import logging

    import lightning as L
    import torch

    from vadflow.module import AnomalyModule

    torch.set_num_threads(threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    runs = {}
    for method in methods:
        L.seed_everything(1, verbose=False)
        model, optim = method_and_optim(method, dataset)
        runs[method] = (AnomalyModule(model, optim), training_datamodule(dataset, model))
    seconds = {method: [] for method in methods}
    for round_ in range(pairs + 1):
        for method, (module, dm) in runs.items():
            trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                accelerator="cpu", devices=1, gradient_clip_val=100, gradient_clip_algorithm="norm", limit_val_batches=0)
            t0 = time.perf_counter()
            trainer.fit(module, datamodule=dm)
            if round_:
                seconds[method].append(time.perf_counter() - t0)
    return seconds


def _print_epoch_pairs(seconds: dict[str, list[float]], dataset: str, threads: int) -> None:
    import statistics

    first = next(iter(seconds))
    print(f"\nseconds per training epoch on {dataset}, {threads} threads, methods alternating in one process")
    for method, values in seconds.items():
        mean = statistics.mean(values)
        ratio = "" if method == first else f"  {mean / statistics.mean(seconds[first]) - 1:+.1%} against {first}; per pair " + " ".join(
            f"{b / a - 1:+.1%}" for a, b in zip(seconds[first], values))
        print(f"  {method:18s} {mean:7.2f} s ({' '.join(f'{v:.2f}' for v in values)}){ratio}")


def _train_steps(model, opt, dm, steps: int) -> float:
    import torch

    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(steps + 5)]
    for b in batches[:5]:  # warm-up (ActNorm init, allocator)
        opt.zero_grad()
        model.loss(b)["loss"].backward()
        opt.step()
    t0 = time.perf_counter()
    for b in batches[5:]:
        opt.zero_grad()
        model.loss(b)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100)
        opt.step()
    return steps * 256 / (time.perf_counter() - t0)


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
                        help="only: N rounds of one whole training epoch per method, alternating in one process (the first method is the baseline)")
    parser.add_argument("--child-throughput", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score_only:
        _print_results(score_hour(args.threads), f"vadflow-score on synthetic tracks, shipped STG-NF, {args.threads} threads")
        return
    if "VADFLOW_DATA" not in os.environ:
        raise SystemExit("bench: set VADFLOW_DATA to the datasets folder (the Makefile does when ../shared/datasets exists)")
    if args.child_throughput:
        print(json.dumps(throughput(args.dataset, args.threads, args.steps, args.child_throughput)))
        return
    check_names(args.methods, args.dataset)
    if args.epoch_pairs:
        _print_epoch_pairs(epoch_pairs(args.dataset, args.threads, args.methods, args.epoch_pairs), args.dataset, args.threads)
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
