"""conditioner=camera: a flow whose coupling networks see the window's camera (an exact conditional density)."""
from __future__ import annotations

from functools import partial

import hydra
import pytest
import torch

from vadflow.data.types import ConfigError
from vadflow.methods.flow_head import PoseFlow
from vadflow.nn.camera import CameraCondition

from .conftest import compose

T, V = 12, 18


def batch_of(n: int, camera: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 2, T, V, generator=g), "vis": torch.ones(n, T, V, dtype=torch.bool), "camera": torch.full((n,), camera)}


def conditioned_flow() -> PoseFlow:
    return PoseFlow(seg_len=T, K=2, conditioner=partial(CameraCondition, dim=4, camera_dropout=0.0))


def test_the_score_is_the_flows_nll_given_the_camera_and_an_unseen_camera_is_unknown():
    torch.manual_seed(0)
    model = conditioned_flow()
    model.train()
    model.loss(batch_of(32, camera=3))  # marks camera 3 seen (and initialises ActNorm)
    assert model.conditioner.seen[3] and not model.conditioner.seen[5]
    with torch.no_grad():
        model.conditioner.embedding.weight[3].fill_(2.0)  # cameras 3 and 0 now condition differently
    model.eval()
    batch = batch_of(4, camera=3, seed=1)
    with torch.no_grad():
        own = model.score(batch)
        unseen = model.score({**batch, "camera": torch.full((4,), 5)})
        unknown = model.score({**batch, "camera": torch.zeros(4, dtype=torch.long)})
        cond = model.conditioner.condition(batch)
        torch.testing.assert_close(own, model.window_nll(batch, False, cond))  # the conditional NLL, nothing standardised
    assert not torch.allclose(own, unknown)
    torch.testing.assert_close(unseen, unknown)  # a camera never seen in training is scored as unknown
    assert model.score_unit == "bits/dim" and not model.has_token_part and model.needs_trajectory


def test_training_drops_the_camera_to_unknown_on_its_share_of_windows():
    cond = CameraCondition(dim=4, camera_dropout=1.0).train()
    out = cond.condition(batch_of(8, camera=3))
    torch.testing.assert_close(out, cond.embedding.weight[0].view(1, 4, 1, 1).expand(8, 4, 1, 1))


def test_a_batch_without_cameras_is_refused_in_words():
    with pytest.raises(ValueError, match="needs each window's camera"):
        conditioned_flow().loss({"x": torch.zeros(2, 2, T, V)})


def test_frame_coordinates_with_a_camera_conditioned_flow_compose_train_and_score(tmp_path):
    from vadflow.build import build_method, method_config
    from vadflow.config_check import check_config
    from vadflow.methods import needs_trajectory

    cfg = compose("train", ["method=stgnf", "trajectory=frame", "conditioner=camera", f"paths.output_dir={tmp_path}"])
    check_config(cfg)
    model = build_method(method_config(cfg), hydra.utils.instantiate(cfg.loss))
    assert isinstance(model.pose.conditioner, CameraCondition) and needs_trajectory(model)
    plain = compose("train", ["method=dsnf", "conditioner=camera", f"paths.output_dir={tmp_path}"])
    assert needs_trajectory(build_method(method_config(plain), hydra.utils.instantiate(plain.loss)))  # batches must carry the camera


def test_a_vae_takes_no_camera_condition(tmp_path):
    from vadflow.config_check import check_config

    with pytest.raises(ConfigError, match="conditioner=.*method gmfcvae takes no conditioner"):
        check_config(compose("train", ["method=gmfcvae", "conditioner=camera", f"paths.output_dir={tmp_path}"]))
