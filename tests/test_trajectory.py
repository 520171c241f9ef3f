"""The trajectory component: features, exact log-determinants, the wrapper's contract, runs."""
import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from vadflow.data.cameras import CAMERA_SLOTS, camera_slot, row_camera_slots
from vadflow.data.synthetic import GLOBAL_ANOMALY_KINDS, generate_synthetic
from vadflow.data.windows import normalize_windows, trajectory_features, window_statistics
from vadflow.methods import METHODS
from vadflow.methods.trajectory_aware import TrajectoryAware
from vadflow.data.windows import SUMMARY_EPS, trajectory_summary
from vadflow.nn.trajectory import TrajectoryFlow, trajectory_vector


def test_box_features_of_a_hand_made_window():
    xy = torch.zeros(1, 2, 3, 2)  # (B, T, V, 2), coordinates already divided by the frame size
    xy[0, 0] = torch.tensor([[0.1, 0.2], [0.3, 0.6], [0.9, 0.9]])
    xy[0, 1] = torch.tensor([[0.2, 0.2], [0.4, 0.7], [0.0, 0.0]])
    vis = torch.tensor([[[True, True, False], [True, True, False]]])
    traj, norm = trajectory_features(xy, vis)
    # frame 0: joints 0, 1 only (joint 2 undetected): x 0.1..0.3, y 0.2..0.6
    assert torch.allclose(traj[0, 0], torch.tensor([0.2, 0.4, math.log(0.2), math.log(0.4)]), atol=1e-6)
    assert torch.allclose(traj[0, 1], torch.tensor([0.3, 0.45, math.log(0.2), math.log(0.5)]), atol=1e-6)
    mean, std = window_statistics(xy, vis)
    assert torch.allclose(norm[0], torch.tensor([0.25, 0.425, math.log(std.item())]), atol=1e-6)
    assert torch.allclose(mean.view(-1), torch.tensor([0.25, 0.425]), atol=1e-6)
    g = trajectory_vector(traj, norm)
    assert g.shape == (1, 8)
    assert torch.allclose(g[0, 4:], traj[0, 1] - traj[0, 0])  # motion = frame-to-frame differences


def test_motion_summary_of_a_hand_made_walk_is_in_body_heights():
    # a box 0.2 frame heights tall walking right at 0.01 frames per frame, growing by 1 % per frame
    T = 5
    t = torch.arange(T, dtype=torch.float64)
    log_h = math.log(0.2) + t * math.log(1.01)
    traj = torch.stack([0.1 + 0.01 * t, torch.full((T,), 0.5, dtype=torch.float64), log_h - math.log(2), log_h], 1)[None]
    norm = torch.tensor([[0.3, 0.5, math.log(0.05)]], dtype=torch.float64)
    g = trajectory_summary(traj, norm)
    height = math.exp(log_h.mean().item())
    assert g.shape == (1, 10)
    assert torch.allclose(g[0, :4], torch.tensor([0.3, 0.5, math.log(0.05), -math.log(2)], dtype=torch.float64))
    assert torch.allclose(g[0, 4:6], torch.tensor([0.01 / height, 0.0], dtype=torch.float64))  # velocity, body heights per frame
    assert math.isclose(g[0, 6].item(), math.log(0.01 / height + SUMMARY_EPS))  # speed
    assert math.isclose(g[0, 7].item(), math.log(SUMMARY_EPS), abs_tol=1e-9)  # no jitter about a constant velocity
    assert math.isclose(g[0, 8].item(), math.log(1.01))  # growing: walking towards the camera
    assert math.isclose(g[0, 9].item(), math.log(SUMMARY_EPS), abs_tol=1e-9)
    # the same walk twice as close to the camera (everything twice as large and fast): motion unchanged
    near = traj.clone()
    near[..., :2] *= 2
    near[..., 2:] += math.log(2)
    assert torch.allclose(trajectory_summary(near, norm)[0, 4:], g[0, 4:])


def test_camera_slots_are_stable_and_zero_means_unknown():
    assert camera_slot("01_0014") == 2 and camera_slot("12_001") == 13
    assert camera_slot("nocamera") == 0
    assert 1 <= camera_slot("lobby_003") < CAMERA_SLOTS and camera_slot("lobby_003") == camera_slot("lobby_999")
    rows = row_camera_slots(["01_001", "03_002"], np.array([1, 0, 1]), np.array([0, 2, 3, 7]))
    assert rows.tolist() == [4, 4, 2, 4, 4, 4, 4]


@pytest.mark.parametrize("features, vector, dim", [("frames", trajectory_vector, 4 * 6), ("summary", trajectory_summary, 10)])
def test_trajectory_flow_log_determinant_is_exact_float64(features, vector, dim):
    torch.manual_seed(0)
    flow = TrajectoryFlow(seg_len=6, K=3, hidden=16, camera_dim=4, features=features).double()
    batch = {"traj": torch.randn(64, 6, 4, dtype=torch.float64), "norm": torch.randn(64, 3, dtype=torch.float64),
             "camera": torch.randint(1, 5, (64,))}
    flow.train()
    flow.nll(batch)  # ActNorm's data-dependent init, cameras seen
    for p in flow.parameters():  # move every coupling away from the identity it starts as
        p.data.add_(0.1 * torch.randn_like(p))
    flow.eval()
    g = vector(batch["traj"][:1], batch["norm"][:1])[..., None, None]
    cond = flow.condition(batch["camera"][:1])
    z, logdet = flow.flow(g, cond)
    jac = torch.autograd.functional.jacobian(lambda v: flow.flow(v.view(1, -1, 1, 1), cond)[0].flatten(), g.flatten())
    assert jac.shape == (dim, dim)
    assert torch.allclose(logdet[0], torch.linalg.slogdet(jac)[1], atol=1e-9)
    nll = flow.nll({k: v[:1] for k, v in batch.items()})
    expected = 0.5 * (z.flatten() ** 2).sum() + 0.5 * z.numel() * math.log(2 * math.pi) - logdet[0]
    assert torch.allclose(nll[0], expected, atol=1e-9)
    with pytest.raises(ValueError, match="features"):
        TrajectoryFlow(features="boxes")


@pytest.mark.parametrize("features", ["frames", "summary"])
def test_one_node_training_path_equals_the_generic_flow_bit_for_bit(features, monkeypatch):
    """The training path (one autograd node on the packed weights) gives the NLL and every gradient
    of the generic path on one tensor per layer exactly, so runs trained before either existed
    reproduce; its own gradients match finite differences (float64)."""
    import vadflow.nn.fused_mlp_flow as fused_module
    from vadflow.nn.fused_mlp_flow import MLPFlowFunction

    torch.manual_seed(0)
    generic = TrajectoryFlow(seg_len=12, features=features, packed=False).train()
    batch = {"traj": torch.randn(256, 12, 4).cumsum(1) * 0.05, "norm": torch.randn(256, 3), "camera": torch.randint(1, 13, (256,))}
    generic.nll(batch)  # ActNorm's data-dependent init
    with torch.no_grad():
        for p in generic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    flow = TrajectoryFlow(seg_len=12, features=features).train()
    flow.load_state_dict(generic.state_dict())  # one tensor per layer loads into the packed flow
    assert flow.flow.mlp_fusable and not generic.flow.mlp_fusable
    assert [name for name, _ in flow.named_parameters()] == ["camera.weight", "flow.packed"]
    calls = []
    taken = fused_module.mlp_flow_forward
    monkeypatch.setattr(fused_module, "mlp_flow_forward", lambda *a: calls.append(len(calls) + 1) or taken(*a))
    torch.manual_seed(1)  # the same camera dropout in both
    fast_nll = flow.nll(batch)
    fast_nll.mean().backward()
    assert calls, "the training path was not taken"
    torch.manual_seed(1)
    generic_nll = generic.nll(batch)
    generic_nll.mean().backward()
    assert calls == [1] and torch.equal(fast_nll, generic_nll)
    layer_grads = torch.cat([p.grad.reshape(-1) for name, p in generic.named_parameters() if name.startswith("flow.")])
    assert torch.equal(flow.flow.packed.grad, layer_grads)
    assert torch.equal(flow.camera.weight.grad, generic.camera.weight.grad)
    # a caller asking for gradients of the box trajectory gets them on both paths
    input_grads = []
    for model in (flow, generic):
        traj = batch["traj"].clone().requires_grad_()
        torch.manual_seed(1)
        model.nll({**batch, "traj": traj}).sum().backward()
        input_grads.append(traj.grad)
    assert calls[-1] == 2 and input_grads[0].abs().sum() > 0 and torch.equal(*input_grads)

    small = TrajectoryFlow(seg_len=6, K=2, hidden=8, camera_dim=4, features=features).double().train()
    small.nll({k: (v[:32, :6].double() if v.is_floating_point() else v[:32]) for k, v in batch.items()})
    shapes = tuple(slot.shape for slot in small.flow.slots)
    flat = small.flow.packed.detach().clone().requires_grad_()
    x = torch.randn(5, small.dim, 1, 1, dtype=torch.float64, requires_grad=True)
    cond = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, c, w: MLPFlowFunction.apply(x, c, small.dim // 2, shapes, w), (x, cond, flat))


def test_packed_flow_moves_copies_and_scores_like_the_layered_one():
    """The packed weights are views made on each forward: after ``.double()``, a deep copy and a
    pickle round trip the flow scores as the same flow with one tensor per layer."""
    import copy
    import pickle

    torch.manual_seed(0)
    layered = TrajectoryFlow(seg_len=8, features="summary", packed=False)
    batch = {"traj": torch.randn(64, 8, 4).cumsum(1) * 0.05, "norm": torch.randn(64, 3), "camera": torch.randint(1, 13, (64,))}
    layered.train().nll(batch)
    packed = TrajectoryFlow(seg_len=8, features="summary")
    packed.load_state_dict(layered.state_dict())
    packed = pickle.loads(pickle.dumps(copy.deepcopy(packed))).double().eval()
    layered = layered.double().eval()
    as_double = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    with torch.no_grad():
        assert torch.equal(packed.nll(as_double), layered.nll(as_double))
    assert not hasattr(packed.flow.steps[0].actnorm, "bias")  # no view outlives a forward


def test_normalisation_volume_factor_matches_a_numerical_jacobian_float64():
    """u = s x + m with x on {mean 0, std(y) 1}: the (2N - 3)-dim chart plus (m_x, m_y, s) has
    volume factor N^1.5 s^(2N - 3), the term ``normalisation_jacobian`` adds."""
    torch.manual_seed(1)
    T, V = 3, 4
    n = T * V
    x = normalize_windows(torch.randn(1, T, V, 2, dtype=torch.float64))[0]  # (2, T, V)
    xx, xy_ = x[0].flatten(), x[1].flatten()
    constraints = torch.zeros(3, 2 * n, dtype=torch.float64)
    constraints[0, :n], constraints[1, n:], constraints[2, n:] = 1.0, 1.0, xy_
    tangent = torch.linalg.svd(constraints, full_matrices=True)[2][3:].T  # (2N, 2N - 3) orthonormal

    def to_window(params):  # (m_x, m_y, s, chart coordinates) -> u
        mx, my, s, a = params[0], params[1], params[2], params[3:]
        moved = torch.cat([xx, xy_]) + tangent @ a
        w = normalize_windows(moved.view(2, T, V).permute(1, 2, 0)[None])[0]  # back onto the set
        return torch.cat([s * w[0].flatten() + mx, s * w[1].flatten() + my])

    for s in (0.05, 0.3, 2.0):
        params = torch.cat([torch.tensor([0.4, 0.6, s], dtype=torch.float64), torch.zeros(2 * n - 3, dtype=torch.float64)])
        jac = torch.autograd.functional.jacobian(to_window, params)
        log_volume = 0.5 * torch.linalg.slogdet(jac.T @ jac)[1]
        assert log_volume.item() == pytest.approx((2 * n - 3) * math.log(s) + 1.5 * math.log(n), abs=1e-8)


def _batch(b=8, T=24, V=18):
    torch.manual_seed(0)
    xy = torch.rand(b, T, V, 2) * 0.2 + 0.4
    vis = torch.rand(b, T, V) > 0.2
    traj, norm = trajectory_features(xy, vis)
    return {"x": normalize_windows(xy, vis), "vis": vis, "traj": traj, "norm": norm, "camera": torch.randint(1, 4, (b,)),
            "index": torch.arange(b)}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_with_the_trajectory_component_trains_and_scores(name):
    pose = METHODS[name](seg_len=24)
    model = TrajectoryAware(pose, TrajectoryFlow(seg_len=24))
    batch = _batch()
    if name in ("stgnf", "daflow", "dsnf"):  # NLL-in-bits methods also take the joint likelihood
        assert TrajectoryAware(pose, TrajectoryFlow(seg_len=24), combine="likelihood").combine == "likelihood"
    model.train()
    out = model.loss(batch)
    assert torch.isfinite(out["loss"]) and "trajectory_nll" in out
    out["loss"].backward()
    for pname, p in model.trajectory.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trajectory.parameters())
    model.eval()
    assert model.combine == "max"  # the default
    with pytest.raises(RuntimeError, match="fit_statistics"):
        model.score(batch)
    model.fit_statistics([batch])
    with torch.no_grad():
        score, parts = model.score(batch), model.score_parts(batch)
        model.combine = "standardised"
        summed = model.score(batch)
    assert score.shape == (8,) and score.dtype == torch.float32 and torch.isfinite(score).all()
    assert torch.equal(score, torch.maximum(parts["pose"], parts["trajectory"]))
    assert torch.allclose(summed, parts["pose"] + parts["trajectory"])
    # the parts are training z-scores: mean 0, std 1 over the windows they were fitted on
    assert torch.allclose(parts["pose"].mean(), torch.tensor(0.0), atol=1e-3) and torch.allclose(parts["trajectory"].std(unbiased=False), torch.tensor(1.0), atol=1e-3)


def test_likelihood_score_is_pose_nll_plus_trajectory_nll_per_pose_dim():
    pose, flow = METHODS["stgnf"](seg_len=24), TrajectoryFlow(seg_len=24)
    model = TrajectoryAware(pose, flow, combine="likelihood").eval()
    jac_model = TrajectoryAware(pose, flow, combine="likelihood", normalisation_jacobian=True).eval()
    batch = _batch()
    with torch.no_grad():
        d = batch["x"][0].numel()
        expected = pose.score(batch) + flow.nll(batch) / (math.log(2) * d)
        assert torch.allclose(model.score(batch), expected, atol=1e-5)
        n = batch["vis"].flatten(1).sum(1).float() if pose.score_visible_only else torch.full((8,), 24.0 * 18)
        extra = (2 * n - 3) * batch["norm"][:, 2] / (math.log(2) * d)
        assert torch.allclose(jac_model.score(batch), expected + extra, atol=1e-5)


def test_impossible_combinations_are_build_time_errors():
    with pytest.raises(ValueError, match="not an NLL"):
        TrajectoryAware(METHODS["gmfcvae"](seg_len=24), TrajectoryFlow(seg_len=24), combine="likelihood")
    with pytest.raises(ValueError, match="needs combine=likelihood"):
        TrajectoryAware(METHODS["stgnf"](seg_len=24), TrajectoryFlow(seg_len=24), normalisation_jacobian=True)
    with pytest.raises(ValueError, match="combine must be"):
        TrajectoryAware(METHODS["stgnf"](seg_len=24), TrajectoryFlow(seg_len=24), combine="auto")
    with pytest.raises(ValueError, match="window lengths differ"):
        TrajectoryAware(METHODS["stgnf"](seg_len=24), TrajectoryFlow(seg_len=16))
    with pytest.raises(ValueError, match="traj / norm / camera"):
        TrajectoryFlow(seg_len=24).nll({"x": torch.zeros(1, 2, 24, 18)})


def test_unseen_cameras_are_scored_as_unknown():
    flow = TrajectoryFlow(seg_len=24).train()
    flow.condition(torch.tensor([2, 3]))
    flow.eval()
    emb = flow.camera.weight
    assert torch.equal(flow.condition(torch.tensor([2, 7])), torch.stack([emb[2], emb[0]]))


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning", "ignore:Mean of empty slice:RuntimeWarning")
def test_global_anomalies_change_position_size_or_speed_only():
    def height_speed_y(kinds):
        _, test = generate_synthetic(seed=4, n_train_clips=0, n_test_clips=6, anomaly_kinds=kinds)
        stats = {}
        for t in test.tracks:
            mask = test.masks[t.clip][t.frames] > 0
            if mask.sum() < 10 or (~mask).sum() < 10:
                continue
            kp = np.where(t.kp[..., 2:] > 0, t.kp[..., :2], np.nan)
            h = np.nanmax(kp[..., 1], 1) - np.nanmin(kp[..., 1], 1)
            cx, cy = np.nanmean(kp[..., 0], 1), np.nanmean(kp[..., 1], 1)
            v = np.abs(np.diff(cx)) / h[1:]
            ratio = lambda a: np.nanmedian(a[mask[: len(a)]]) / np.nanmedian(a[~mask[: len(a)]])  # noqa: E731
            stats = {"height": ratio(h), "speed": ratio(v), "y": ratio(cy)}
            break
        return stats

    assert set(GLOBAL_ANOMALY_KINDS) == {"close", "dash", "offpath"}
    assert height_speed_y(("close",))["height"] > 1.5
    assert height_speed_y(("dash",))["speed"] > 1.8
    assert height_speed_y(("offpath",))["y"] < 0.85  # higher in the image = smaller y


@pytest.mark.parametrize("kind, method", [("flow", "stgnf"), ("frame", "stgnf"), ("stream", "gmfcvae")])
def test_trained_trajectory_checkpoint_evaluates_identically(kind, method, tmp_path):
    common = ["logger=none", "trainer.max_epochs=1", "+trainer.enable_progress_bar=false", "threads=1", f"paths.cache_dir={tmp_path / 'c'}"]
    small = ["+dataset.synthetic.n_train_clips=4", "+dataset.synthetic.n_test_clips=3", "+dataset.synthetic.clip_len=200"]
    train = subprocess.run([sys.executable, "-m", "vadflow.train", f"method={method}", f"trajectory={kind}", "calibrate=false", f"hydra.run.dir={tmp_path / 'r'}", *common, *small],
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    ev = subprocess.run([sys.executable, "-m", "vadflow.evaluate", f"ckpt_path={tmp_path / 'r' / 'model.ckpt'}", f"hydra.run.dir={tmp_path / 'e'}",
                         "threads=1", f"paths.cache_dir={tmp_path / 'c'}", "+trainer.enable_progress_bar=false"], capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]
    import json

    a = json.loads((tmp_path / "r" / "metrics.json").read_text())
    b = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert a["trajectory"] == b["trajectory"] == kind
    assert {p: r["auc"] for p, r in a["protocols"].items()} == {p: r["auc"] for p, r in b["protocols"].items()}


def test_nothing_learned_baselines_on_hand_made_windows():
    from vadflow.methods.baselines import BodyHeight, CentreSpeed

    T, V = 5, 18
    base = torch.rand(V, 2) * 0.1
    xy = torch.stack([base + torch.tensor([0.02 * t, 0.0]) for t in range(T)])[None]  # moves right 0.02 per frame
    xy = torch.cat([xy, xy * torch.tensor([1.0, 2.0])])  # second window: twice as tall, same motion
    vis = torch.ones(2, T, V, dtype=torch.bool)
    traj, norm = trajectory_features(xy, vis)
    batch = {"x": normalize_windows(xy, vis), "vis": vis, "traj": traj, "norm": norm}
    height = BodyHeight(seg_len=T).score(batch)
    extent = base[:, 1].max() - base[:, 1].min()
    assert torch.allclose(height, torch.stack([extent, 2 * extent]), atol=1e-6)
    speed = CentreSpeed(seg_len=T).score(batch)  # body sizes per frame: the taller person moves fewer of them
    std_y = window_statistics(xy, vis)[1]
    assert torch.allclose(speed, 0.02 / std_y, atol=1e-5)
    assert sum(p.numel() for p in BodyHeight().parameters()) == 0
    with pytest.raises(ValueError, match="trajectory"):
        BodyHeight().score({"x": batch["x"], "vis": vis})


def test_baselines_ignore_undetected_joints_and_empty_frames():
    """An undetected joint far away moves neither cue; a frame with nobody detected adds no step
    (its two steps are left out, not counted as 0); the height is a median, so one outlier frame
    does not move it."""
    from vadflow.methods.baselines import BodyHeight, CentreSpeed

    T, V = 6, 18
    base = torch.zeros(V, 2)
    base[:, 1] = torch.linspace(0.1, 0.3, V)
    xy = torch.stack([base + torch.tensor([0.01 * t, 0.0]) for t in range(T)])[None].clone()
    vis = torch.ones(1, T, V, dtype=torch.bool)
    vis[..., 0] = False
    xy[:, :, 0] = torch.tensor([5.0, -3.0])  # undetected, far away
    xy[:, 4, 1:, 1] = base[1:, 1] * 3  # frame 4: an outlier height
    traj, norm = trajectory_features(xy, vis)
    batch = {"x": normalize_windows(xy, vis), "vis": vis, "traj": traj, "norm": norm}
    extent = base[1:, 1].max() - base[1:, 1].min()
    assert torch.allclose(BodyHeight(seg_len=T).score(batch), extent[None], atol=1e-6)
    steady = xy.clone()
    steady[:, 4, 1:, 1] = base[1:, 1]
    std_y = window_statistics(steady, vis)[1]
    gone = vis.clone()
    gone[:, 2] = False  # nobody detected on frame 2
    speed = CentreSpeed(seg_len=T).score({"x": normalize_windows(steady, gone), "vis": gone})
    assert torch.allclose(speed, 0.01 / window_statistics(steady, gone)[1], atol=1e-5)
    assert torch.allclose(CentreSpeed(seg_len=T).score({"x": normalize_windows(steady, vis), "vis": vis}), 0.01 / std_y, atol=1e-5)


def test_a_model_trains_after_scoring_in_inference_mode():
    """Cached conv indices first built under torch.inference_mode must not break a later backward."""
    from vadflow.nn.stgcn import _toeplitz_index

    _toeplitz_index.cache_clear()
    model = METHODS["daflow"](seg_len=24)
    batch = _batch()
    model.eval()
    with torch.inference_mode():
        model.score(batch)
    model.train()
    model.loss(batch)["loss"].backward()
    assert any(p.grad is not None for p in model.parameters())


def test_held_out_statistics_come_from_the_held_out_clips_not_the_training_windows(tmp_path):
    """trajectory.statistics=held_out: the parts' means and stds are those of the normal clips held out
    of training (dataset.val_fraction), and nothing of them is trained on."""
    import hydra

    from vadflow.build import build_method, method_config
    from vadflow.config import datamodule_kwargs, to_plain
    from vadflow.data.datamodule import PoseDataModule
    from vadflow.runs import fit_on_training_windows

    from .conftest import compose

    cfg = compose("train", ["trajectory=flow", "trajectory.statistics=held_out", "dataset.val_fraction=0.25", f"paths.output_dir={tmp_path}",
                            f"paths.cache_dir={tmp_path / 'c'}", "+dataset.synthetic.n_train_clips=8", "+dataset.synthetic.clip_len=120"])
    model = build_method(method_config(cfg), hydra.utils.instantiate(cfg.loss))
    assert model.statistics_split == "held_out"
    dm = PoseDataModule(**datamodule_kwargs(to_plain(cfg.dataset), to_plain(cfg.paths)), trajectory_features=True)
    dm.setup("fit")
    held, trained = set(dm.val_set.starts.tolist()), set(dm.train_set.starts.tolist())
    assert held and not held & trained  # whole clips, out of training
    fit_on_training_windows(model, dm, "fit_statistics")
    columns = lambda b: torch.stack([model.pose.score(b).float(), model.trajectory_bits(b)], 1)  # noqa: E731
    from vadflow.nn.flow import training_mean_std

    for loader, same in ((dm.val_dataloader(), True), (dm.statistics_dataloader(), False)):
        mean, std = training_mean_std(model, loader, columns, torch.device("cpu"))
        assert torch.allclose(model.part_mean, mean, atol=1e-5) == same and torch.allclose(model.part_std, std, atol=1e-5) == same


def test_camera_z_scores_each_camera_against_its_own_training_windows():
    """trajectory_parts' per-camera standardisation: a camera with enough training windows uses its
    own mean and std, a rare or unseen one the pooled statistics."""
    import numpy as np

    from vadflow.trajectory_parts import camera_z

    train = np.r_[np.full(40, 1.0), np.full(40, 3.0), [100.0] * 2]
    train[:20] += 1.0  # camera 1: 20 x 2 and 20 x 1 -> mean 1.5, std 0.5
    train_cams = np.r_[np.full(40, 1), np.full(40, 2), [3, 3]]  # camera 2 constant; camera 3 rare
    values, cams = np.array([2.5, 3.0, 100.0, 5.0]), np.array([1, 2, 3, 4])
    z = camera_z(values, cams, train, train_cams, min_windows=32)
    assert z[0] == pytest.approx((2.5 - 1.5) / 0.5)
    assert z[1] == pytest.approx(0.0)  # std 0 is floored, the mean is its own
    pooled = (np.array([100.0, 5.0]) - train.mean()) / train.std()
    np.testing.assert_allclose(z[2:], pooled)  # rare camera 3 and unseen camera 4



def test_one_sided_trajectory_part_counts_only_big_or_fast_people():
    """trajectory_parts.one_sided: a window bigger or faster than its camera's training mean keeps
    its trajectory part; a small and slow one is clipped to the part's training median."""
    import numpy as np

    from vadflow.trajectory_parts import one_sided

    cams = np.full(40, 1)
    train = {"camera": cams, "size": np.r_[np.zeros(20), np.ones(20)], "speed": np.r_[np.zeros(20), np.ones(20)],
             "trajectory": np.arange(40, dtype=float)}  # median 19.5
    test = {"camera": np.full(4, 1), "size": np.array([2.0, -1.0, -1.0, -1.0]), "speed": np.array([-1.0, 2.0, -1.0, -1.0]),
            "trajectory": np.array([50.0, 60.0, 70.0, 5.0])}
    np.testing.assert_array_equal(one_sided(test, train), [50.0, 60.0, 19.5, 5.0])

def test_optimizer_state_of_layered_flow_packs_like_its_weights():
    """pack_optimizer_state: Adamax's state saved over one tensor per layer becomes the packed
    tensor's state (concatenated as the weights are); the next step then moves the packed weights
    exactly as it moves the layered ones; a state of another model is refused."""
    from vadflow.nn.flow import pack_optimizer_state

    torch.manual_seed(0)
    layered = TrajectoryFlow(seg_len=8, features="summary", packed=False).train()
    batch = {"traj": torch.randn(64, 8, 4).cumsum(1) * 0.05, "norm": torch.randn(64, 3), "camera": torch.randint(1, 13, (64,))}
    layered.nll(batch)
    opt = torch.optim.Adamax(layered.parameters(), 1e-2, foreach=True)
    for _ in range(2):
        opt.zero_grad()
        layered.nll(batch).mean().backward()
        opt.step()
    saved_keys, saved_opt = list(layered.state_dict()), copy.deepcopy(opt.state_dict())
    packed = TrajectoryFlow(seg_len=8, features="summary").train()
    packed.load_state_dict(layered.state_dict())
    packed_opt = torch.optim.Adamax(packed.parameters(), 1e-2, foreach=True)
    assert not pack_optimizer_state(packed, list(packed.state_dict()), copy.deepcopy(packed_opt.state_dict()))  # already packed
    assert pack_optimizer_state(packed, saved_keys, saved_opt)
    packed_opt.load_state_dict(saved_opt)
    for model, optimizer in ((layered, opt), (packed, packed_opt)):
        torch.manual_seed(5)
        optimizer.zero_grad()
        model.nll(batch).mean().backward()
        optimizer.step()
    layers = torch.cat([p.detach().reshape(-1) for name, p in layered.named_parameters() if name.startswith("flow.")])
    assert torch.equal(packed.flow.packed.detach(), layers)
    with pytest.raises(ValueError, match="does not belong"):
        pack_optimizer_state(packed, saved_keys[:-3], copy.deepcopy(opt.state_dict()))
