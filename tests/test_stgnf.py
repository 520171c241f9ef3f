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
    jac = torch.autograd.functional.jacobian(lambda v: model.flow(v.view(1, 2, 8, 18))[0].flatten(), x.flatten(), vectorize=True)
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


def assert_same_gradients(fast: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Every parameter's gradient equal (float64 tolerances). A conv bias right before BatchNorm
    cancels out: its true gradient is 0 (float noise in the reference, 0 or None on a fast path)."""
    for (name, pf), (_, pr) in zip(fast.named_parameters(), ref.named_parameters()):
        if name.endswith(("residual.0.bias", "gcn.conv.bias")):
            assert pr.grad.abs().max() < 1e-9 and (pf.grad is None or pf.grad.abs().max() < 1e-9), name
            continue
        torch.testing.assert_close(pf.grad, pr.grad, rtol=1e-8, atol=1e-10, msg=name)


def assert_same_buffers(fast: torch.nn.Module, ref: torch.nn.Module) -> None:
    """BatchNorm running statistics (and every other buffer) equal."""
    for (name, bf), (_, br) in zip(fast.named_buffers(), ref.named_buffers()):
        torch.testing.assert_close(bf.double(), br.double(), rtol=1e-8, atol=1e-10, msg=name)


def test_plane_training_path_equals_the_generic_flow():
    """Training runs nn/fused_flow.plane_train_forward (hand-written backward, its own BatchNorm
    and temporal conv): same loss, gradients and BatchNorm running statistics as the generic path
    with torch's own BatchNorm2d and convolution. In float64, so the comparison is tight."""
    import copy

    from vadflow.methods.stgnf import STGNF
    from vadflow.nn.stgcn import STGCNBlock

    torch.manual_seed(0)
    generic = STGNF(seg_len=24, K=8).double().train()
    x = torch.randn(32, 2, 24, 18, dtype=torch.float64)
    generic.nll(x)  # ActNorm initialisation (generic path either way)
    plane = copy.deepcopy(generic)
    generic.flow.fusable = False
    for block in generic.modules():
        if isinstance(block, STGCNBlock):
            block._fast_training = lambda x: False  # the residual branch as torch's conv + BatchNorm
    for _ in range(2):  # twice: running statistics after two updates
        x = torch.randn(32, 2, 24, 18, dtype=torch.float64) * 1.5 + 0.3
        loss_g, loss_p = generic.nll(x).mean(), plane.nll(x).mean()
        torch.testing.assert_close(loss_p, loss_g, rtol=1e-10, atol=1e-10)
        generic.zero_grad()
        plane.zero_grad()
        loss_g.backward()
        loss_p.backward()
        assert_same_gradients(plane, generic)
    assert_same_buffers(plane, generic)


def test_stgcn_block_training_fast_path_equals_torch_modules():
    """DA-Flow's and DSNF's coupling nets run STGCNBlock in training with the residual branch as
    an affine map of the input: same output, gradients and running statistics as the conv + BN."""
    import copy

    from vadflow.nn.graph import uniform_adjacency
    from vadflow.nn.stgcn import STGCNBlock

    torch.manual_seed(2)
    A = torch.from_numpy(uniform_adjacency(18, max_hop=8)).double()
    fast = STGCNBlock(1, 2, 13, A, residual=True).double().train()
    ref = copy.deepcopy(fast)
    ref._fast_training = lambda x: False
    for _ in range(2):
        x = torch.randn(16, 1, 24, 18, dtype=torch.float64) * 2 + 0.5
        out_f, out_r = fast(x), ref(x)
        torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-10)
        w = torch.randn_like(out_f)
        (out_f * w).sum().backward()
        (out_r * w).sum().backward()
        assert_same_gradients(fast, ref)
    assert_same_buffers(fast, ref)


def test_toeplitz_temporal_conv_equals_torch_convolution():
    """Every temporal convolution runs as one Toeplitz matmul (nn/stgcn.temporal_conv and
    conv_over_time): output and gradients equal torch's Conv2d / Conv1d, float64."""
    import torch.nn.functional as F

    from vadflow.nn.stgcn import conv_over_time, temporal_conv

    torch.manual_seed(5)
    for c, o, k, v in ((2, 2, 13, 1), (4, 4, 3, 6), (1, 3, 5, 18)):
        conv = torch.nn.Conv2d(c, o, (k, 1), padding=(k // 2, 0)).double()
        h = torch.randn(3, c, 24, v, dtype=torch.float64, requires_grad=True)
        ours, ref = temporal_conv(conv, h), F.conv2d(h, conv.weight, conv.bias, padding=conv.padding)
        torch.testing.assert_close(ours, ref)
        w = torch.randn_like(ref)
        g_ours = torch.autograd.grad((ours * w).sum(), (h, conv.weight, conv.bias))
        g_ref = torch.autograd.grad((ref * w).sum(), (h, conv.weight, conv.bias))
        for a, b in zip(g_ours, g_ref):
            torch.testing.assert_close(a, b)
    conv1 = torch.nn.Conv1d(2, 2, 3, padding=1).double()
    g = torch.randn(4, 2, 24, dtype=torch.float64)
    torch.testing.assert_close(conv_over_time(g, conv1), conv1(g))


def test_plane_coupling_backward_is_the_gradient():
    """The hand-written backward of the training step's elementwise half, against autograd's
    numerical gradient (gradcheck, float64), with some pre-activations below zero."""
    from vadflow.nn.fused_flow import PlaneCoupling

    torch.manual_seed(1)
    z1, z2 = torch.randn(4, 3, 5, dtype=torch.float64), torch.randn(4, 3, 5, dtype=torch.float64)  # (V, B, T)
    t = torch.randn(3, 2, 5, dtype=torch.float64)  # (B, 2, T)
    coef, offset = torch.tensor([0.7, -0.4], dtype=torch.float64), torch.tensor([0.1, 0.3], dtype=torch.float64)
    inputs = tuple(v.requires_grad_() for v in (z1, z2, t, coef, offset))
    assert torch.autograd.gradcheck(PlaneCoupling.apply, inputs)


def test_plane_actnorm_and_mean_var_backward_are_the_gradient():
    """The other hand-written backwards of the training fast path (ActNorm on a plane; the
    residual BatchNorm's mean and variance), against numerical gradients."""
    from vadflow.nn.fused_flow import PlaneActNorm
    from vadflow.nn.stgcn import MeanVar

    torch.manual_seed(3)
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    bias, logs = torch.tensor(0.3, dtype=torch.float64, requires_grad=True), torch.tensor(-0.2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(PlaneActNorm.apply, (x, bias, logs))
    assert torch.autograd.gradcheck(MeanVar.apply, (x,))
    mean, var = MeanVar.apply(x)
    torch.testing.assert_close(mean, x.mean())
    torch.testing.assert_close(var, x.var(unbiased=False))


def test_coupling_transform_backward_is_the_gradient():
    """Every flow's affine coupling runs as one autograd node (nn/flow.CouplingTransform); its
    hand-written backward against numerical gradients, with the log-scale summed per window and
    kept per location."""
    from vadflow.nn.flow import CouplingTransform

    torch.manual_seed(4)
    z2, shift, raw = (torch.randn(3, 1, 5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    for per_location in (False, True):
        assert torch.autograd.gradcheck(lambda a, b, c: CouplingTransform.apply(a, b, c, per_location), (z2, shift, raw))
