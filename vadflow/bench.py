"""make bench: speed and memory of STG-NF on HR-ShanghaiTech (needs the data root).

Each stage runs in its own process so its wall time and peak RSS are its own:
  1. prepare from the raw archive (cold, into a fresh cache dir), then the cached load;
  2. training and inference throughput (windows/s) on real batches;
  3. the official schedule end to end: 8 epochs + test evaluation (``vadflow-train``).
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

from vadflow.config import ROOT

TARGETS = {"train+eval wall s": 300, "inference windows/s": 20_000, "peak RSS GB (train+eval)": 2.0, "prepare cold s": 90, "prepare cached s": 2}


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


def throughput(dataset: str, threads: int, steps: int) -> dict:
    """Training steps (batch 256, Adamax, grad clip) and full-test-set inference, in-process."""
    import lightning as L
    import torch

    from vadflow.data.datamodule import PoseDataModule
    from vadflow.methods.stgnf import STGNF

    torch.set_num_threads(threads)
    L.seed_everything(0, verbose=False)
    dm = PoseDataModule(name=dataset, data_root=os.environ["VADFLOW_DATA"], cache_dir=str(ROOT / ".cache"), batch_size=256)
    dm.setup()
    model = STGNF().train()
    opt = torch.optim.Adamax(model.parameters(), lr=5e-4, foreach=True)
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
    train_wps = steps * 256 / (time.perf_counter() - t0)
    model.eval()
    n = dm.test_set.n
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, 4096):
            idx = list(range(start, min(n, start + 4096)))
            model.score(dm.test_set.__getitems__(idx))
    infer_wps = n / (time.perf_counter() - t0)
    return {"train windows/s": train_wps, "inference windows/s": infer_wps, "test windows": n, "train windows/epoch": len(dm.train_set)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="hr_shanghaitech")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--skip-full", action="store_true", help="skip the 8-epoch end-to-end run")
    parser.add_argument("--child-throughput", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "VADFLOW_DATA" not in os.environ:
        raise SystemExit("bench: set VADFLOW_DATA to the datasets folder (the Makefile does when ../shared/datasets exists)")
    if args.child_throughput:
        print(json.dumps(throughput(args.dataset, args.threads, args.steps)))
        return
    bin_dir = Path(sys.executable).parent
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        wall, rss, _ = run_child([str(bin_dir / "vadflow-prepare"), f"dataset={args.dataset}", f"paths.cache_dir={cache}", f"threads={args.threads}", "hydra.run.dir=" + cache + "/h1"])
        results["prepare cold s"], results["peak RSS GB (prepare cold)"] = wall, rss
        wall, rss, out = run_child([str(bin_dir / "vadflow-prepare"), f"dataset={args.dataset}", f"paths.cache_dir={cache}", f"threads={args.threads}", "hydra.run.dir=" + cache + "/h2"])
        results["prepare cached s"] = float(out.split("loaded from cache in ")[1].split(" s")[0])
        results["prepare cached process wall s (incl. imports)"] = wall
    # the shared cache for the remaining stages
    run_child([str(bin_dir / "vadflow-prepare"), f"dataset={args.dataset}", f"threads={args.threads}", "hydra.run.dir=/tmp/vadflow-bench-h3"])
    _, _, out = run_child([sys.executable, "-m", "vadflow.bench", "--child-throughput", f"--dataset={args.dataset}", f"--threads={args.threads}", f"--steps={args.steps}"])
    results.update(json.loads(out.strip().splitlines()[-1]))
    if not args.skip_full:
        with tempfile.TemporaryDirectory() as run_dir:
            wall, rss, _ = run_child([str(bin_dir / "vadflow-train"), f"experiment=stgnf/{args.dataset}", "logger=none", f"threads={args.threads}",
                                      f"hydra.run.dir={run_dir}", "+trainer.enable_progress_bar=false"])
            metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        results["train+eval wall s"] = wall
        results["  of which training s"] = metrics["train_seconds"]
        results["  of which evaluation s"] = metrics["eval_seconds"]
        results["peak RSS GB (train+eval)"] = rss
        results["AUC of that run (mpedrnn protocol)"] = 100 * metrics["protocols"]["mpedrnn"]["auc"]
    print(f"\nvadflow bench: STG-NF on {args.dataset}, {args.threads} threads, torch {__import__('torch').__version__}")
    for key, value in results.items():
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            ok = value >= target if "windows/s" in key else value <= target
            verdict = f"   (target {'>=' if 'windows/s' in key else '<='} {target:,}: {'met' if ok else 'NOT met'})"
        print(f"  {key:44s} {value:>12,.2f}{verdict}" if isinstance(value, float) else f"  {key:44s} {value:>12,}{verdict}")


if __name__ == "__main__":
    main()
