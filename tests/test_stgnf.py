"""STG-NF model: parameter counts, exact log-determinant, ActNorm state, fast path."""
import pytest
import torch

from vadflow.methods.stgnf import STGNF
from vadflow.nn.flow import ActNorm


@pytest.mark.parametrize("seg_len, n_params", [(24, 616), (16, 488)])
def test_trainable_parameters_match_the_paper(seg_len, n_params):
    assert sum(p.numel() for p in STGNF(seg_len=seg_len).parameters() if p.requires_grad) == n_params


def _random_trained_like(seg_len=8):
    torch.manual_seed(0)
    model = STGNF(seg_len=seg_len).double()
    model.train()
    model.nll(torch.randn(64, 2, seg_len, 18, dtype=torch.float64))  # initialise ActNorm + BN stats
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    return model.eval()


def test_log_determinant_is_exact():
    model = _random_trained_like()
    x = torch.randn(1, 2, 8, 18, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model.flow(v.view(1, 2, 8, 18))[0].flatten(), x.flatten())
    _, logdet = model.flow(x)
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-8)


def test_joint_mean_fast_path_equals_the_general_graph_conv():
    model = _random_trained_like()
    x = torch.randn(5, 2, 8, 18, dtype=torch.float64)
    fast = model.nll(x)
    for step in model.flow.steps:
        assert step.coupling.net.joint_mean
        step.coupling.net.joint_mean = False
    # A holds 1/18 in float32, the fast path an exact mean: equal to float32 rounding of A
    torch.testing.assert_close(model.nll(x), fast, rtol=1e-7, atol=0)


def test_actnorm_initialisation_survives_a_reload():
    torch.manual_seed(0)
    model = STGNF()
    model.train()
    model.nll(torch.randn(32, 2, 24, 18) * 3 + 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = STGNF()
    fresh.load_state_dict(state)
    fresh.train()
    fresh.nll(torch.randn(32, 2, 24, 18))  # a new batch must not re-initialise it
    for k in ("flow.steps.0.actnorm.bias", "flow.steps.0.actnorm.logs"):
        torch.testing.assert_close(fresh.state_dict()[k], state[k])


def test_actnorm_data_dependent_init():
    norm = ActNorm(2)
    norm.train()
    x = torch.randn(256, 2, 24, 18) * torch.tensor([3.0, 0.5]).view(1, 2, 1, 1) + 4
    z, _ = norm(x, torch.zeros(256))
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    assert norm.initialized.item() == 1


def test_score_is_nll_and_higher_for_outliers():
    model = _random_trained_like(24).float()
    x = torch.randn(8, 2, 24, 18)
    batch = {"x": x}
    torch.testing.assert_close(model.score(batch), model.nll(x))
    assert model.score({"x": x * 20}).mean() > model.score(batch).mean()
    assert torch.isfinite(model.loss(batch)["loss"])


def test_per_location_nll_sums_to_the_window_nll():
    model = _random_trained_like()
    x = torch.randn(3, 2, 8, 18, dtype=torch.float64)
    nll_map = model.score_map({"x": x})
    assert nll_map.shape == (3, 8, 18)
    torch.testing.assert_close(nll_map.double().mean((1, 2)), model.nll(x).double(), atol=1e-6, rtol=1e-6)


def test_visible_only_score_ignores_imputed_joints():
    model = _random_trained_like()
    model.score_visible_only = True
    x = torch.randn(2, 2, 8, 18, dtype=torch.float64)
    vis = torch.ones(2, 8, 18, dtype=torch.bool)
    assert torch.allclose(model.score({"x": x, "vis": vis}).double(), model.nll(x).double(), atol=1e-6)
    vis[:, :, 14:] = False  # face joints imputed
    nll_map = model.score_map({"x": x})
    expected = nll_map[:, :, :14].mean((1, 2))
    torch.testing.assert_close(model.score({"x": x, "vis": vis}), expected)
    vis[1] = False  # nothing detected: every location counts
    torch.testing.assert_close(model.score({"x": x, "vis": vis})[1], nll_map[1].mean())
