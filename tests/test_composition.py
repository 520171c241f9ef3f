"""Head x backbone x conditioner x loss: every allowed combination honours the method contract,
every impossible one fails when it is built, in one line; each preset learns the synthetic data."""
import re
from pathlib import Path

import hydra
import pytest
import torch

from vadflow.config_check import check_config
from vadflow.data.types import ConfigError
from vadflow.methods import ALLOWED_COMBINATIONS
from vadflow.build import build_method, method_config
from vadflow.train import run_training

from .conftest import compose

SEG_LEN = 8  # short windows keep the float64 Jacobians small (2 x 8 x 18 = 288 dimensions)


def combo_id(c: dict) -> str:
    return "-".join(f"{c[k]}" for k in ("head", "backbone", "conditioner", "loss"))


def overrides(c: dict) -> list[str]:
    ov = [f"method={'gmfcvae' if c['head'] == 'vae' else 'stgnf'}", f"backbone={c['backbone']}",
          f"conditioner={c['conditioner']}", f"loss={c['loss']}", f"dataset.seg_len={SEG_LEN}", "paths.output_dir=/tmp/unused"]
    if c["head"] == "flow":
        ov.append("method.model.K=3")
    if c["backbone"] == "dual_space":
        ov.append("backbone.compile_hyperbolic=false")  # compiling is a speed option, tested in test_daflow_dsnf
    if c["conditioner"] == "vq_tokens":
        ov += ["conditioner.num_codes=8", "conditioner.tf_layers=1"]
    return ov


def build(c: dict):
    cfg = compose("train", overrides(c))
    check_config(cfg)
    return build_method(method_config(cfg), hydra.utils.instantiate(cfg.loss))


def batch_of(n: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 2, SEG_LEN, 18, generator=g), "vis": torch.rand(n, SEG_LEN, 18, generator=g) > 0.2,
            "index": torch.arange(n), "camera": torch.randint(1, 4, (n,), generator=g)}


def test_the_registry_covers_every_head_backbone_and_conditioner():
    assert len(ALLOWED_COMBINATIONS) >= 20
    assert {c["backbone"] for c in ALLOWED_COMBINATIONS if c["head"] == "flow"} == {"stgcn", "dual_attention", "dual_space"}
    assert {c["backbone"] for c in ALLOWED_COMBINATIONS if c["head"] == "vae"} == {"st_conv", "stgcn"}
    assert {"vq_tokens", "camera", "none"} == {c["conditioner"] for c in ALLOWED_COMBINATIONS}


@pytest.mark.parametrize("combo", ALLOWED_COMBINATIONS, ids=combo_id)
def test_allowed_combination_honours_the_contract(combo):
    torch.manual_seed(0)
    model = build(combo)
    assert model.backbone_name == combo["backbone"]
    if combo["head"] == "flow":
        assert (model.conditioner is not None) == (combo["conditioner"] != "none")
    batch = batch_of()
    # loss: finite, and it reaches every trainable parameter
    model.train()
    out = model.loss(batch)
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no finite gradient for {missing[:5]}"
    # score: (B,) float32, finite
    model.eval()
    with torch.no_grad():
        score = model.score(batch)
    assert score.shape == (6,) and score.dtype == torch.float32 and torch.isfinite(score).all()
    # bf16 autocast: loss and score stay finite
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.loss(batch)["loss"].float())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.score(batch).float()).all()


@pytest.mark.parametrize("combo", [c for c in ALLOWED_COMBINATIONS if c["head"] == "flow" and c["loss"] == "nll"], ids=combo_id)
def test_flow_log_determinant_is_exact(combo):
    """The flow's log-determinant against slogdet of its numerical Jacobian (float64, eval mode,
    the condition held fixed), and the scoring path's (fused where declared) against both."""
    torch.manual_seed(0)
    model = build(combo)
    model.train()
    model.loss(batch_of(32, seed=1))  # ActNorm's data-dependent init and BatchNorm statistics
    model = model.double().eval()
    batch = batch_of(1, seed=2)
    x = batch["x"].double()
    cond = model.score_condition({**batch, "x": x})[0] if model.conditioner is not None else None
    jac = torch.autograd.functional.jacobian(lambda v: model.flow(v.view_as(x), cond)[0].flatten(), x.flatten(), vectorize=True)
    sign, logabsdet = torch.linalg.slogdet(jac)
    _, logdet = model.flow(x, cond)
    with torch.no_grad():
        _, logdet_scoring = model.flow(x, cond)
    assert sign.item() > 0
    torch.testing.assert_close(logdet.squeeze(), logabsdet, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet_scoring.squeeze(), logabsdet, atol=1e-8, rtol=1e-8)


IMPOSSIBLE = [
    (["method=stgnf", "loss=gmm_energy"], r"loss.weights.cov: method stgnf produces no 'cov' term \(its terms: nll\)"),
    (["method=stgnf", "loss=vq"], r"loss.weights.commit: method stgnf produces no 'commit' term"),
    (["method=msgflow", "loss=gmm_energy"], r"method msgflow produces no 'cov' term"),
    (["method=gmfcvae", "loss=vq"], r"method gmfcvae produces no 'commit' term"),
    (["method=stgnf", "backbone=st_conv"], r"backbone=st_conv is GMFC-VAE's encoder block; a flow head takes backbone="),
    (["method=gmfcvae", "backbone=dual_space"], r"backbone=dual_space builds flow coupling networks only"),
    (["method=gmfcvae", "backbone=dual_attention"], r"backbone=dual_attention builds flow coupling networks only"),
    (["method=gmfcvae", "conditioner=vq_tokens"], r"conditioner=vq_tokens: method gmfcvae takes no conditioner"),
    (["method=stgnf", "backbone=none"], r"a flow head needs a backbone"),
    (["method=height_baseline", "backbone=stgcn"], r"backbone=stgcn: method height_baseline takes no backbone"),
    (["method=speed_baseline", "loss=awam", "+loss.weights.nll=1"], r"method speed_baseline produces no 'nll' term \(its terms: none"),
    (["method=stgnf", "+loss.weights.nlll=2"], r"loss.weights.nlll: method stgnf produces no 'nlll' term"),
    (["method=stgnf", "backbone.temporal_kernel=6"], r"backbone.temporal_kernel must be odd \(a same-length output\), got 6"),
    (["method=stgnf", "dataset.n_joints=17"], r"dataset.n_joints=17: every reader writes OpenPose-18 \(x, y\) windows, so n_joints must be 18"),
]


@pytest.mark.parametrize("ov,message", IMPOSSIBLE, ids=lambda v: v if isinstance(v, str) and "=" not in v else None)
def test_impossible_combination_fails_at_build_in_one_line(ov, message):
    with pytest.raises(ConfigError) as err:
        cfg = compose("train", ov + ["paths.output_dir=/tmp/unused"])
        check_config(cfg)
        build_method(method_config(cfg), hydra.utils.instantiate(cfg.loss))
    assert re.search(message, str(err.value)) and "\n" not in str(err.value)


def test_impossible_combination_is_one_line_from_the_command(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "vadflow.train", "method=gmfcvae", "backbone=dual_space", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["vadflow: error: backbone=dual_space builds flow coupling networks only; "
                                                "a VAE head takes backbone=stgcn or st_conv"]


def _ddp_worker(rank: int, world: int, store_file: str, out_file: str) -> None:
    import gc

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from datetime import timedelta

    torch.set_num_threads(1)
    # a file store: no TCP port to pick (a free port can be taken between the pick and the bind)
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))  # a lost peer fails, never hangs
    sums = []
    for combo in ALLOWED_COMBINATIONS:
        torch.manual_seed(0)  # the same initial weights on every rank, as Lightning seeds them
        model = build(combo)
        model.train()
        model.forward = model.loss  # DDP calls forward(); a method's training entry point is loss()
        wrapped = DistributedDataParallel(model)  # no find_unused_parameters: every parameter must get a gradient
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(2):
            out = wrapped(batch_of(4, seed=10 * rank + step))
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        sums.append(float(sum(p.detach().double().sum() for p in model.parameters())))
    # no DDP wrapper may outlive the process group: one released after destroy_process_group takes the
    # group down in its destructor, which can wait for ever on gloo's thread once the peer has gone
    # (seen once: rank 0 stuck in ~ProcessGroupGloo under ~Reducer as the worker returned)
    del wrapped, model
    sums.append(_trajectory_flow_steps(DistributedDataParallel, rank))
    gc.collect()  # the models refer to themselves (forward = loss): only the collector frees them and their wrappers
    gathered = [None] * world
    dist.all_gather_object(gathered, sums)
    if rank == 0:
        torch.save(gathered, out_file)
    dist.barrier()  # neither rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def _trajectory_flow_steps(ddp, rank: int) -> float:
    """Three steps of the trajectory flow under DDP: the first initialises ActNorm on the generic
    path, the next two run its one-node training path, whose gradients must be all-reduced too."""
    from vadflow.nn.trajectory import TrajectoryFlow

    torch.manual_seed(0)
    flow = TrajectoryFlow(seg_len=SEG_LEN, K=2, hidden=16).train()
    flow.forward = lambda batch: flow.nll(batch).mean()
    wrapped = ddp(flow)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(rank)
    for _ in range(3):
        batch = {"traj": torch.randn(16, SEG_LEN, 4, generator=g).cumsum(1) * 0.05, "norm": torch.randn(16, 3, generator=g),
                 "camera": torch.randint(1, 4, (16,), generator=g)}
        opt.zero_grad()
        wrapped(batch).backward()
        opt.step()
    return float(sum(p.detach().double().sum() for p in flow.parameters()))


def _spawn_within(seconds: float, fn, args: tuple, nprocs: int) -> bool:
    """``mp.spawn`` that gives up after ``seconds``: False (the processes killed) if they have not
    all ended by then; a process that raises still raises here."""
    import time

    import torch.multiprocessing as mp

    group = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + seconds
    while not group.join(timeout=5):
        if time.monotonic() > deadline:
            for process in group.processes:
                process.kill()
            return False
    return True


@pytest.mark.timeout(600)
def test_a_ddp_spawn_step_works_for_every_combination(tmp_path):
    """Two gloo processes, two optimiser steps of every allowed combination on different batches:
    gradients are all-reduced, so the ranks end with the same weights. The trajectory flow too.
    The pair takes ~12 s. A pair still running after 180 s is killed and started once more, with a
    warning: a hung child would otherwise keep pytest from exiting (it did once, before the
    worker released its DDP wrappers ahead of the process group)."""
    import warnings

    out = tmp_path / "sums.pt"
    for attempt in range(2):
        if _spawn_within(180, _ddp_worker, (2, str(tmp_path / f"store{attempt}"), str(out)), 2):
            break
        warnings.warn(f"the two gloo processes were still running after 180 s (attempt {attempt + 1}): killed")
    else:
        pytest.fail("the two gloo processes hung twice (180 s each)")
    rank0, rank1 = torch.load(out)
    assert len(rank0) == len(ALLOWED_COMBINATIONS) + 1
    for name, a, b in zip([combo_id(c) for c in ALLOWED_COMBINATIONS] + ["trajectory flow"], rank0, rank1):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), name


# -- each preset learns: a short training on the synthetic data, AUC (stgnf protocol, seed 29) ----
# Bounds: measured with these overrides on 1 thread, minus a margin for thread-count float noise
# (measured values in the comment); chance is 50.
LEARNS = [
    (["method=stgnf", "method.epochs=2"], 65.0),  # measured 70.9
    (["method=daflow", "method.epochs=2"], 66.0),  # measured 72.0
    (["method=dsnf", "method.epochs=2", "backbone.compile_hyperbolic=false"], 64.0),  # measured 69.5
    (["method=msgflow", "method.epochs=2"], 65.0),  # measured 70.5
    (["method=gmfcvae", "method.epochs=3"], 66.0),  # measured 71.5
]


@pytest.mark.parametrize("ov,bound", LEARNS, ids=lambda v: v[0] if isinstance(v, list) else None)
def test_preset_learns_the_synthetic_data(ov, bound, tmp_path):
    cfg = compose("train", ov + ["logger=none", "figures=false", "calibrate=false", "save_every_epoch=false",
                                 f"paths.output_dir={tmp_path}", f"hydra.run.dir={tmp_path}"])
    record = run_training(cfg)
    assert record["dataset"] == "synthetic" and 100 * record["auc"] >= bound, record["auc"]


# -- checkpoints -----------------------------------------------------------------------------
PRETRAINED = sorted((Path(__file__).resolve().parents[1] / "vadflow" / "pretrained").glob("*.ckpt"))


@pytest.mark.parametrize("path", PRETRAINED, ids=lambda p: p.stem)
def test_shipped_checkpoint_loads_key_for_key(path):
    """Checkpoints written before the head/backbone split rebuild from their own configs, every
    stored tensor loaded (strict) and none left at its initial value."""
    from vadflow.checkpoint import load_method, read_checkpoint

    from vadflow.nn.flow import Flow

    ckpt = read_checkpoint(path)
    model, _ = load_method(ckpt)  # load_state_dict is strict: a missing or unexpected key raises
    state = model.state_dict()
    for prefix, flow in model.named_modules():  # a packed flow's tensor, as the per-layer tensors it was saved as
        if isinstance(flow, Flow) and flow.slots:
            state.update({f"{prefix}.{name}": t for name, t in flow.layer_tensors(state.pop(f"{prefix}.packed")).items()})
    assert len(state) == len(ckpt["state_dict"])
    stored = {k if k in state else f"conditioner.{k}": v for k, v in ckpt["state_dict"].items()}
    assert set(stored) == set(state)
    for key, value in stored.items():
        assert torch.equal(state[key], value), key


def test_a_new_checkpoint_stores_head_backbone_conditioner_and_loss(tiny_overrides, tmp_path):
    from vadflow.checkpoint import load_method, read_checkpoint

    cfg = compose("train", tiny_overrides + ["method=dsnf", "backbone=dual_attention", "conditioner=vq_tokens", "loss=awam",
                                             "conditioner.num_codes=8", "calibrate=false", "figures=false"])
    run_training(cfg)
    ckpt = read_checkpoint(tmp_path / "run" / "model.ckpt")
    model_cfg = ckpt["method"]["model"]
    assert model_cfg["_target_"] == "vadflow.methods.flow_head.PoseFlow"
    assert model_cfg["backbone"]["_target_"] == "vadflow.nn.backbones.DualAttention"
    assert model_cfg["conditioner"]["_target_"] == "vadflow.nn.tokens.VQTokens"
    assert ckpt["method"]["loss"]["reducer"]["_target_"] == "vadflow.losses.AWAMReducer"
    model, _ = load_method(ckpt)
    assert model.backbone_name == "dual_attention" and model.conditioner.quantizer.num_codes == 8


@pytest.mark.parametrize("loss", ["nll", "awam", "vq", "gmm_energy"])
def test_objective_is_named_after_its_loss_config(loss):
    """metrics.json and the tables name the objective as conf/loss does (every config builds the
    same Objective class, so its class name says nothing)."""
    cfg = compose("train", [f"loss={loss}", "paths.output_dir=."])
    assert hydra.utils.instantiate(cfg.loss).name == loss
    awam = compose("train", [f"loss={loss}", "loss/reducer=awam", "paths.output_dir=."])
    assert hydra.utils.instantiate(awam.loss).name == ("awam" if loss in ("nll", "awam") else f"{loss}+awam")
