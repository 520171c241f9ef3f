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


def test_fused_inference_path_equals_the_generic_flow():
    """Scoring (eval, no grad) runs nn/fused_flow.py; it must give the generic path's z and
    log-determinant, per window and per location, with trained-like BatchNorm statistics."""
    from vadflow.methods.stgnf import STGNF

    torch.manual_seed(0)
    model = STGNF(seg_len=24, K=8)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval()
    assert model.flow.fusable
    x = torch.randn(64, 2, 24, 18)
    for per_location in (False, True):
        with torch.enable_grad():  # gradients on: the generic path
            z_ref, ld_ref = model.flow(x, per_location=per_location)
        with torch.no_grad():
            z, ld = model.flow(x, per_location=per_location)
        torch.testing.assert_close(z, z_ref.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ld, ld_ref.detach(), rtol=1e-5, atol=1e-4)


def test_train_visible_only_loss_is_the_detected_joint_mean_and_trains():
    from vadflow.methods.stgnf import STGNF
    from vadflow.nn.flow import masked_location_mean

    torch.manual_seed(0)
    x, vis = torch.randn(16, 2, 24, 18), torch.rand(16, 24, 18) > 0.3
    model = STGNF(seg_len=24, K=2, train_visible_only=True)
    model.loss({"x": x, "vis": vis})  # ActNorm initialises on the first batch
    out = model.loss({"x": x, "vis": vis})
    expect = masked_location_mean(model.score_map({"x": x}), vis).mean()
    torch.testing.assert_close(out["nll"], expect.detach())
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    full = STGNF(seg_len=24, K=2, train_visible_only=True)
    full.load_state_dict(model.state_dict())
    all_vis = torch.ones_like(vis)
    torch.testing.assert_close(full.loss({"x": x, "vis": all_vis})["nll"], full.nll(x).mean().detach(), rtol=1e-5, atol=1e-5)


def test_plane_training_path_equals_the_generic_flow():
    """Training runs nn/fused_flow.plane_train_forward: same loss, gradients and BatchNorm running
    statistics as the generic path."""
    import copy

    from vadflow.methods.stgnf import STGNF

    torch.manual_seed(0)
    generic = STGNF(seg_len=24, K=8).train()
    x = torch.randn(32, 2, 24, 18)
    generic.nll(x)  # ActNorm initialisation (generic path either way)
    plane = copy.deepcopy(generic)
    generic.flow.fusable = False
    for _ in range(2):  # twice: running statistics after two updates
        x = torch.randn(32, 2, 24, 18) * 1.5 + 0.3
        loss_g, loss_p = generic.nll(x).mean(), plane.nll(x).mean()
        torch.testing.assert_close(loss_p, loss_g, rtol=1e-5, atol=1e-5)
        generic.zero_grad()
        plane.zero_grad()
        loss_g.backward()
        loss_p.backward()
        for (name, pg), (_, pp) in zip(generic.named_parameters(), plane.named_parameters()):
            # a conv bias right before BatchNorm cancels out: its true gradient is 0 (None in the
            # plane path, float noise in the generic one)
            if pp.grad is None:
                assert name.endswith("residual.0.bias") and pg.grad.abs().max() < 1e-4, name
                continue
            torch.testing.assert_close(pp.grad, pg.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, bg), (_, bp) in zip(generic.named_buffers(), plane.named_buffers()):
        torch.testing.assert_close(bp.float(), bg.float(), rtol=1e-4, atol=1e-6, msg=name)
