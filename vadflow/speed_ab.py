"""Same-machine A/B of training-step throughput: an older commit against the working tree,
alternating runs (a shared machine's speed drifts by up to ~30 % over an hour, so far-apart runs
are never compared). Random windows, batch 256, T = 24, best of 5 x 20 steps, one thread.

    python -m vadflow.speed_ab OLD_COMMIT [stgnf daflow dsnf dsnf_eager]

This file runs under both versions (``PYTHONPATH`` picks which ``vadflow`` it imports), so it only
uses constructors every version has; dsnf_eager turns off the compiled hyperbolic layer.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def step_throughput(method: str, threads: int = 1) -> float:
    import inspect
    from functools import partial

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if method == "stgnf":
        from vadflow.methods.stgnf import STGNF as Model
    elif method == "daflow":
        from vadflow.methods.daflow import DAFlow as Model
    elif method in ("dsnf", "dsnf_eager"):
        from vadflow.methods.dsnf import DSNF

        has_option = "compile_hyperbolic" in inspect.signature(DSNF).parameters  # older commits run eager either way
        Model = partial(DSNF, compile_hyperbolic=method == "dsnf") if has_option else DSNF
    else:
        raise SystemExit(f"unknown method {method!r}")
    model = Model(seg_len=24, K=8).train()
    opt = torch.optim.Adamax(model.parameters(), 5e-4, foreach=True)
    batch = {"x": torch.randn(256, 2, 24, 18), "vis": torch.ones(256, 24, 18, dtype=torch.bool)}

    def step():
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()

    for _ in range(5):
        step()
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(20):
            step()
        best = max(best, 256 * 20 / (time.perf_counter() - t))
    return best


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--one"]:  # a child: one measurement with whichever vadflow PYTHONPATH gives
        print(f"{step_throughput(argv[1]):.0f}")
        return 0
    old, methods = argv[0], argv[1:] or ["stgnf", "daflow", "dsnf"]
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as export:
        archive = subprocess.run(["git", "-C", str(repo), "archive", old, "vadflow"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", export], input=archive, check=True)
        for method in methods:
            for _ in range(2):
                for label, path in ((old, export), ("work tree", str(repo))):
                    env = {**os.environ, "PYTHONPATH": path}
                    out = subprocess.run([sys.executable, __file__, "--one", method], env=env, cwd=tempfile.gettempdir(),
                                         capture_output=True, text=True, check=True)
                    print(f"{method:10s} {label:10s} {out.stdout.strip()} training windows/s (1 thread)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
