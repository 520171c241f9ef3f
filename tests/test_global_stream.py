"""GMFC-VAE's own global stream (``trajectory=stream``): box features, camera references, the
per-camera prior, the score's two parts, and the config that builds it."""
from __future__ import annotations

import hydra
import pytest
import torch

from .conftest import compose
from vadflow.data.types import ConfigError
from vadflow.methods.gmfcvae import GLOBAL_CHANNELS, MIN_CAMERA_WINDOWS, GMFCVAE, box_track_features

T, V = 8, 18


def walker_batch(n: int, camera: int = 3, place=(0.5, 0.6), height: float = 0.2, speed: float = 0.004, seed: int = 0) -> dict:
    """n normal windows of one camera: a box of the given height walking right at ``speed`` frame
    widths per frame along a path (x anywhere within 0.3 of ``place``, y within 0.1), with small
    jitter; x is a random pose (the pose streams see noise only)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)
    start = torch.tensor(place) + (torch.rand(n, 2, generator=g) - 0.5) * torch.tensor([0.6, 0.2])
    cx = start[:, :1] + speed * t + 0.002 * torch.randn(n, T, generator=g)
    cy = start[:, 1:] + 0.002 * torch.randn(n, T, generator=g)
    log_h = torch.log(torch.full((n, T), height)) + 0.02 * torch.randn(n, T, generator=g)
    log_w = log_h + torch.log(torch.tensor(0.4))
    traj = torch.stack([cx, cy, log_w, log_h], -1)
    return {"x": torch.randn(n, 2, T, V, generator=g), "vis": torch.ones(n, T, V, dtype=torch.bool), "traj": traj,
            "norm": torch.zeros(n, 3), "camera": torch.full((n,), camera)}


def test_box_features_by_hand():
    # a box 0.2 frame heights tall (constant), width 0.08, walking right 0.01 per frame, then growing 10 % once
    log_h = torch.log(torch.tensor([0.2, 0.2, 0.2, 0.22]))
    traj = torch.stack([torch.tensor([0.30, 0.31, 0.32, 0.33]), torch.full((4,), 0.5), torch.log(torch.full((4,), 0.08)), log_h], -1)[None]
    f = box_track_features(traj.double())[0]
    assert f.shape == (GLOBAL_CHANNELS, 4)
    height = log_h.double().mean().exp()
    torch.testing.assert_close(f[0], traj[0, :, 0].double())  # centre x
    torch.testing.assert_close(f[2], log_h.double())  # log height
    torch.testing.assert_close(f[4], torch.full((4,), 0.01, dtype=torch.float64) / height)  # velocity, body heights per frame
    torch.testing.assert_close(f[6], torch.tensor([0.0, 0.0, 0.0, float(log_h[3] - log_h[2])], dtype=torch.float64))  # growth; frame 0 repeats frame 1
    torch.testing.assert_close(f[3, 0], torch.log(torch.tensor(0.08 / 0.2, dtype=torch.float64)))  # aspect


def test_reference_is_per_camera_and_a_rare_camera_takes_every_windows():
    model = GMFCVAE(seg_len=T, streams=("appearance", "global"))
    near = walker_batch(64, camera=3, height=0.4)
    far = walker_batch(64, camera=5, height=0.1, seed=1)
    rare = walker_batch(MIN_CAMERA_WINDOWS - 1, camera=7, seed=2)
    model.fit_reference([near, far, rare])
    assert model.seen[[0, 3, 5]].all() and not model.seen[7]
    mid = T // 2
    torch.testing.assert_close(model.box_centre[3, 2], box_track_features(near["traj"])[:, 2, mid].median(), atol=1e-3, rtol=0)
    assert model.box_centre[3, 2] - model.box_centre[5, 2] == pytest.approx(float(torch.log(torch.tensor(4.0))), abs=0.02)
    ref, prior = model.eval().camera_slot(rare)
    assert (ref == 0).all() and (prior == 0).all()  # too few windows of its own: the reference of all cameras


def test_per_camera_mixture_weights_change_only_that_cameras_energy():
    model = GMFCVAE(seg_len=T, streams=("appearance", "global"), global_fusion="sum").eval()
    batch = walker_batch(4)
    model.fit_reference([walker_batch(64, camera=3), walker_batch(64, camera=5, seed=1)])
    before = {c: model.split_score({**batch, "camera": torch.full((4,), c)})["trajectory"] for c in (3, 5)}
    with torch.no_grad():
        model.vaes["global"].prior_logits[3] = torch.tensor([8.0, -8.0, -8.0, -8.0])
    after = {c: model.split_score({**batch, "camera": torch.full((4,), c)})["trajectory"] for c in (3, 5)}
    assert not torch.allclose(before[3], after[3])
    torch.testing.assert_close(before[5], after[5])


def test_score_is_pose_plus_trajectory_and_a_global_anomaly_raises_the_trajectory_part():
    torch.manual_seed(0)
    model = GMFCVAE(seg_len=T, streams=("appearance", "motion", "global"), temporal_kernel=3)
    normal = [walker_batch(256, seed=s) for s in range(4)]
    model.fit_reference(normal)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(60):
        for b in normal:
            opt.zero_grad()
            model.loss(b)["loss"].mean().backward()
            opt.step()
    model.fit_statistics(normal)
    model.eval()
    with torch.no_grad():
        test = walker_batch(32, seed=9)
        parts = model.score_parts(test)
        torch.testing.assert_close(model.score(test), parts["pose"] + parts["trajectory"])
        assert model.score_map(test).shape == (32, T, V)
        usual = parts["trajectory"].median()
        for name, odd in {"close": walker_batch(32, height=0.6, seed=9), "dash": walker_batch(32, speed=0.05, seed=9),
                          "offpath": walker_batch(32, place=(0.5, 0.1), seed=9)}.items():
            odd_parts = model.score_parts(odd)
            assert odd_parts["trajectory"].median() > usual + 1.0, name
            torch.testing.assert_close(odd_parts["pose"], parts["pose"])  # same poses: the pose part does not move


def test_without_the_global_stream_nothing_changes():
    model = GMFCVAE(seg_len=T)
    assert not hasattr(model, "score_parts") and not model.needs_trajectory
    assert not any(k.startswith(("box_", "seen")) for k in model.state_dict())  # old checkpoints load as before
    model.fit_reference(iter(()))  # nothing to fit, nothing read


def test_scoring_before_the_reference_is_fitted_is_refused():
    model = GMFCVAE(seg_len=T, streams=("appearance", "global"), global_fusion="standardised").eval()
    with pytest.raises(RuntimeError, match="fit_reference"):
        model.score(walker_batch(2))
    with pytest.raises(ValueError, match="traj and camera"):
        model.score({"x": torch.zeros(2, 2, T, V)})
    model.fit_reference([walker_batch(64)])
    with pytest.raises(RuntimeError, match="fit_statistics"):
        model.score(walker_batch(2))  # standardised fusion: the parts' training statistics first


def test_trajectory_stream_builds_gmfcvae_with_its_global_stream(tmp_path):
    from vadflow.build import build_method, method_config, trajectory_kind
    from vadflow.config_check import check_config
    from vadflow.methods import needs_trajectory

    cfg = compose("train", ["method=gmfcvae", "trajectory=stream", "trajectory.weight=0.5", f"paths.output_dir={tmp_path}"])
    check_config(cfg)
    method_cfg = method_config(cfg)
    assert trajectory_kind(method_cfg) == "stream"
    model = build_method(method_cfg, hydra.utils.instantiate(cfg.loss))
    assert model.streams == ("appearance", "motion", "global") and model.stream_weights["global"] == 0.5 and needs_trajectory(model)
    assert model.vaes["global"].prior_logits.shape[0] == model.seen.shape[0]  # mixture weights per camera slot


@pytest.mark.parametrize("overrides, message", [
    (["method=stgnf", "trajectory=stream"], "GMFC-VAE's own global stream"),
    (["method=gmfcvae", "trajectory=flow", "method.model.streams=[appearance,global]"], "use trajectory=stream"),
    (["method=gmfcvae", "trajectory=stream", "+trajectory.combine=max"], "trajectory.combine is not an option"),
    (["method=gmfcvae", "trajectory=stream", "trajectory.stream=local"], "trajectory.stream='local'"),
    (["method=gmfcvae", "trajectory=stream", "trajectory.fusion=max"], "trajectory.fusion='max'"),
])
def test_trajectory_stream_refusals_are_one_line(overrides, message, tmp_path):
    from vadflow.build import method_config
    from vadflow.config_check import check_config

    cfg = compose("train", [*overrides, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check_config(cfg)
        method_config(cfg)
