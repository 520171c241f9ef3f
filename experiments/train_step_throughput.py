"""Training-step throughput of one method on random windows (batch 256, T = 24), best of 5 x 20
steps: a model-only figure for comparing two versions of the code on the same machine.

    python experiments/train_step_throughput.py THREADS METHOD      # stgnf | daflow | dsnf | dsnf_eager

dsnf compiles its hyperbolic layer as conf/method/dsnf.yaml does; dsnf_eager does not.
"""
import sys
import time

import torch

threads, method = int(sys.argv[1]), sys.argv[2]
torch.set_num_threads(threads)
torch.manual_seed(0)
if method == "stgnf":
    from vadflow.methods.stgnf import STGNF as Model
elif method == "daflow":
    from vadflow.methods.daflow import DAFlow as Model
elif method in ("dsnf", "dsnf_eager"):
    import inspect
    from functools import partial

    from vadflow.methods.dsnf import DSNF

    # older commits (speed_ab.sh) have no compile option: they run eager either way
    has_option = "compile_hyperbolic" in inspect.signature(DSNF).parameters
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
print(f"{method}: best {best:.0f} training windows/s ({threads} thread(s))")
