"""trajectory=frame: the method sees its windows in frame coordinates, by one fixed affine map."""
import math

import numpy as np
import pytest
import torch

from vadflow.data.windows import WindowBuilder
from vadflow.methods import METHODS, needs_trajectory
from vadflow.methods.frame_windows import FrameWindows

FRAME = (640, 360)


def builder_of(kp: np.ndarray, vis: np.ndarray, seg_len: int) -> WindowBuilder:
    builder = WindowBuilder(kp, vis, seg_len, FRAME, use_visibility=True)
    builder.row_camera = torch.zeros(len(kp), dtype=torch.long)  # batches carry traj / norm / camera
    return builder


class NoPose(torch.nn.Module):
    """A stand-in pose model: only the window length (in_frame never calls the pose model)."""

    def __init__(self, seg_len: int):
        super().__init__()
        self.seg_len = seg_len


def walker(n_rows: int = 12, V: int = 18, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kp = rng.uniform([100, 80], [300, 260], size=(n_rows, V, 2)).astype(np.float32)
    vis = rng.uniform(size=(n_rows, V)) > 0.2
    return kp, vis


def fitted(model: FrameWindows, builder: WindowBuilder, starts) -> FrameWindows:
    model.fit_reference([builder.batch(torch.as_tensor(starts))])
    return model


def test_camera_coordinates_of_a_hand_made_window():
    kp = np.array([[[64.0, 36.0], [192.0, 108.0]], [[320.0, 180.0], [448.0, 288.0]],  # window 0: frames 0-1
                   [[0.0, 0.0], [64.0, 72.0]], [[0.0, 0.0], [64.0, 72.0]]], np.float32)  # window 1: frames 2-3
    builder = builder_of(kp, np.ones((4, 2), bool), 2)
    model = fitted(FrameWindows(NoPose(2)), builder, [0, 2])
    # window 0 (frame-relative): y 0.1, 0.3, 0.5, 0.8 -> mean (0.4, 0.425), std(y) sqrt(0.066875);
    # window 1: mean (0.05, 0.1), std(y) 0.1; the medians of two are their means
    size = (math.sqrt(0.066875) + 0.1) / 2
    assert torch.allclose(model.centre[0], torch.tensor([0.225, 0.2625]), atol=1e-6)
    assert model.size[0].item() == pytest.approx(size, abs=1e-6) and model.seen[0] and not model.seen[1:].any()  # camera 0 only
    x = model.in_frame(builder.batch(torch.tensor([0])))["x"]
    # joint 0 of frame 0 is at (0.1, 0.1) of the frame -> ((0.1 - 0.225) / size, (0.1 - 0.2625) / size)
    u = torch.tensor([[[0.1, 0.3], [0.5, 0.7]], [[0.1, 0.3], [0.5, 0.8]]])  # (xy, T, V), frame-relative
    expected = (u - torch.tensor([0.225, 0.2625])[:, None, None]) / size
    assert torch.allclose(x[0], expected, atol=1e-5)


def test_each_camera_is_measured_against_its_own_place_and_size_an_unseen_one_against_all():
    kp, vis = walker(n_rows=24)
    kp[12:] = kp[12:] * 0.5 + 300  # camera 2's people: smaller, elsewhere
    builder = builder_of(kp, vis, 6)
    builder.row_camera = torch.tensor([1] * 12 + [2] * 12)
    model = fitted(FrameWindows(NoPose(6)), builder, [0, 3, 6, 12, 15, 18])
    assert model.seen[[0, 1, 2]].all() and not model.seen[3]
    assert model.size[2] < model.size[1] and (model.centre[2] > model.centre[1]).all()
    batch = builder.batch(torch.tensor([0, 12]))
    x = model.in_frame(batch)["x"]
    for i, cam in enumerate((1, 2)):
        norm = batch["norm"][i]
        direct = (batch["x"][i] * norm[2].exp() + norm[:2, None, None] - model.centre[cam][:, None, None]) / model.size[cam]
        assert torch.allclose(x[i], direct, atol=1e-5)
    unseen = {**batch, "camera": torch.tensor([7, 7])}
    pooled = (batch["x"] * batch["norm"][:, 2].exp()[:, None, None, None] + batch["norm"][:, :2, None, None]
              - model.centre[0][None, :, None, None]) / model.size[0]
    assert torch.allclose(model.in_frame(unseen)["x"], pooled, atol=1e-5)


def test_the_person_reference_keeps_size_and_motion_at_camera_scale_not_place():
    kp, vis = walker(n_rows=12)
    builder = builder_of(kp, vis, 6)
    model = fitted(FrameWindows(NoPose(6), reference="person"), builder, [0, 3, 6])
    batch = builder.batch(torch.tensor([0, 3]))
    x = model.in_frame(batch)["x"]
    assert torch.allclose(x, batch["x"] * batch["norm"][:, 2].exp()[:, None, None, None] / model.size[0], atol=1e-6)
    moved = builder_of(kp + np.array([150.0, 40.0], np.float32), vis, 6).batch(torch.tensor([0, 3]))
    assert torch.allclose(model.in_frame(moved)["x"], x, atol=1e-4)  # place is gone
    bigger = builder_of(kp * 1.5, vis, 6).batch(torch.tensor([0, 3]))
    assert torch.allclose(model.in_frame(bigger)["x"], 1.5 * x, atol=1e-4)  # size is kept
    with pytest.raises(ValueError, match="reference"):
        FrameWindows(NoPose(6), reference="scene")


def test_the_map_undoes_the_normalisation_for_every_joint_imputed_included():
    kp, vis = walker()
    builder = builder_of(kp, vis, 6)
    model = fitted(FrameWindows(NoPose(6)), builder, [0, 3, 6])
    x = model.in_frame(builder.batch(torch.tensor([0, 3, 6])))["x"]
    rows = torch.tensor([0, 3, 6])[:, None] + torch.arange(6)
    u = torch.from_numpy(kp)[rows] / torch.tensor(FRAME, dtype=torch.float32)  # (B, T, V, 2)
    direct = (u - model.centre[0]) / model.size[0]  # every row is camera 0 here
    assert torch.allclose(x, direct.permute(0, 3, 1, 2), atol=1e-4)


def test_the_flip_mirrors_the_person_about_their_own_centre():
    kp, vis = walker()
    builder = builder_of(kp, vis, 6)
    starts = torch.tensor([0, 2])
    model = fitted(FrameWindows(NoPose(6)), builder, [0, 2])
    plain = model.in_frame(builder.batch(starts))["x"]
    flipped = model.in_frame(builder.batch(starts, flip=torch.tensor([True, True])))["x"]
    w = builder.batch(starts)["vis"].float()
    centre = lambda x: (x[:, 0] * w).sum((1, 2)) / w.sum((1, 2))  # noqa: E731 - mean x of the detected joints
    assert torch.allclose(centre(plain), centre(flipped), atol=1e-5)  # the person stays where they are
    assert torch.allclose(flipped[:, 0] - centre(plain)[:, None, None], -(plain[:, 0] - centre(plain)[:, None, None]), atol=1e-4)
    assert torch.allclose(flipped[:, 1], plain[:, 1])


def test_the_window_as_detected_maps_by_a_constant_jacobian_float64():
    """u (frame-relative coordinates) -> normalise -> FrameWindows.in_frame is the affine map
    (u - centre_c) / size_c, whatever the window: its log-determinant is the camera's constant
    -D log size_c, so the method's NLL of x_c is the NLL of u given c up to D log size_c
    (numerical Jacobian, float64)."""
    from vadflow.data.windows import normalize_windows, trajectory_features

    T, V = 3, 4
    D = 2 * T * V
    model = FrameWindows(NoPose(T)).double()
    model.centre[3] = torch.tensor([0.4, 0.3], dtype=torch.float64)
    model.size[3] = 0.08
    model.seen[[0, 3]] = True
    vis = torch.ones(1, T, V, dtype=torch.bool)

    def chain(u_flat: torch.Tensor) -> torch.Tensor:
        u = u_flat.view(1, T, V, 2)
        _, norm = trajectory_features(u, vis)
        return model.in_frame({"x": normalize_windows(u, vis), "norm": norm, "camera": torch.tensor([3])})["x"].flatten()

    u0 = torch.rand(D, dtype=torch.float64) * 0.5 + 0.2
    eps = 1e-6
    jac = torch.stack([(chain(u0 + eps * e) - chain(u0 - eps * e)) / (2 * eps) for e in torch.eye(D, dtype=torch.float64)], 1)
    sign, logdet = torch.linalg.slogdet(jac)
    assert sign.item() == pytest.approx(1.0)
    assert logdet.item() == pytest.approx(-D * math.log(0.08), abs=1e-6)


def test_place_and_size_reach_the_score_only_in_frame_coordinates():
    torch.manual_seed(0)
    kp, vis = walker(n_rows=6)
    moved = kp * 1.5 + np.array([200.0, 60.0], np.float32)  # the same pose, larger and elsewhere
    batches = [builder_of(k, vis, 6).batch(torch.tensor([0])) for k in (kp, moved)]
    pose = METHODS["stgnf"](seg_len=6).eval()
    with torch.no_grad():  # ActNorm initialises on its first training batch; these scores use its identity start
        plain = [pose.score(b).item() for b in batches]
        framed = [fitted(FrameWindows(pose), builder_of(kp, vis, 6), [0]).score(b).item() for b in batches]
    assert plain[0] == pytest.approx(plain[1], rel=1e-4)  # normalised: place and size are gone
    assert abs(framed[0] - framed[1]) > 1e-2


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_and_scores_in_frame_coordinates(name):
    torch.manual_seed(0)
    kp, vis = walker(n_rows=40)
    batch = builder_of(kp, vis, 24).batch(torch.arange(0, 16))
    model = fitted(FrameWindows(METHODS[name](seg_len=24)), builder_of(kp, vis, 24), torch.arange(0, 16))
    assert needs_trajectory(model) and model.seg_len == 24
    out = model.loss(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if hasattr(model.pose, "fit_statistics"):
        model.fit_statistics([batch])
    score = model.eval().score(batch)
    assert score.shape == (16,) and torch.isfinite(score).all()
    parts = model.score_parts(batch)
    torch.testing.assert_close(model.combine_parts(parts), score)  # the explanation's parts sum to the score
    for name in FrameWindows.not_forwarded:  # a pose model's batch-taking methods are not reachable around in_frame
        if hasattr(model.pose, name):
            with pytest.raises(AttributeError):
                getattr(model, name)


def test_the_trajectory_part_is_what_place_and_size_add():
    """A window at its camera's usual place and size has no trajectory part; the same window moved
    and enlarged keeps its pose part and only its trajectory part changes."""
    kp, vis = walker(n_rows=30)
    builder = builder_of(kp, np.ones_like(vis), 24)
    model = fitted(FrameWindows(METHODS["stgnf"](seg_len=24)), builder, [0]).eval()
    moved = builder_of(kp * 1.5 + 40, np.ones_like(vis), 24)
    with torch.no_grad():
        usual, odd = model.score_parts(builder.batch(torch.tensor([0]))), model.score_parts(moved.batch(torch.tensor([0])))
    assert usual["trajectory"].abs().item() < 1e-4  # the only training window is the median: x_c is x
    torch.testing.assert_close(odd["pose"], usual["pose"], atol=1e-4, rtol=1e-4)  # same shape, same motion in body heights
    assert abs(odd["trajectory"].item()) > 1e-2


def test_a_batch_without_the_normalisation_parameters_or_an_unfitted_reference_is_refused():
    model = FrameWindows(METHODS["stgnf"](seg_len=24))
    with pytest.raises(ValueError, match="normalisation parameters and camera"):
        model.score({"x": torch.zeros(2, 2, 24, 18), "vis": torch.ones(2, 24, 18, dtype=torch.bool)})
    kp, vis = walker(n_rows=30)
    with pytest.raises(RuntimeError, match="fit_reference"):
        model.score(builder_of(kp, vis, 24).batch(torch.tensor([0])))
    from vadflow.data.types import DataError

    with pytest.raises(DataError, match="no training window"):  # one line from the commands, as an empty training set is
        model.fit_reference([])
