"""DA-Flow, DSNF (reconstructions) and the AWAM loss: exact flows, hyperbolic maths against
geoopt, untrained modes, bf16 stability."""
import numpy as np
import pytest
import torch

from vadflow.losses import AWAM, MeanNLL, Objective
from vadflow.methods.daflow import DAFlow
from vadflow.methods.dsnf import DSNF
from vadflow.nn import hyperbolic as hyp
from vadflow.nn.attention import DualAttention
from vadflow.train import run_training

from .conftest import compose, saved_auc


def _perturbed(model):
    """Random, non-trivial weights (a fresh flow is close to the identity), in float64, eval mode."""
    torch.manual_seed(0)
    model = model.double()
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    return model.eval()


@pytest.mark.parametrize("make", [lambda: DAFlow(seg_len=8), lambda: DSNF(seg_len=8), lambda: DSNF(seg_len=8, hyp_graph="joints")])
def test_log_determinant_is_exact(make):
    model = _perturbed(make())
    x = torch.randn(1, 2, 8, 18, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model.flow(v.view(1, 2, 8, 18))[0].flatten(), x.flatten(), vectorize=True)
    _, logdet = model.flow(x)
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-7)


def test_models_stay_tiny():
    n = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert 616 < n(DAFlow()) < 1500 and 616 < n(DSNF()) < 2000
    assert n(DAFlow(frame_attention=False)) < n(DAFlow())


def test_dual_attention_gates_frames_and_body_parts():
    att = DualAttention(2)
    h = torch.randn(3, 2, 24, 18)
    g_frame, g_parts = att.gates(h)
    assert g_frame.shape == (3, 2, 24, 1) and g_parts.shape == (3, 2, 24, 6)
    assert torch.all((g_frame > 0) & (g_frame < 1))
    g_skel = g_parts @ att.spread  # joints of one body part share their part's gate
    assert torch.equal(g_skel[..., 3], g_skel[..., 4])  # right arm
    assert torch.allclose(att(h), h * (1 + (g_frame + g_skel) / 2), atol=1e-6)
    # the frame gate: a temporal conv over the joint mean, as torch's Conv1d computes it
    torch.testing.assert_close(g_frame[..., 0], torch.sigmoid(att.frame(h.mean(3))), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exactly once"):
        DualAttention(2, parts={"a": [0, 1]})


def test_random_projection_mode_trains_nothing_and_scores(tiny_overrides, tmp_path):
    cfg = compose("train", tiny_overrides + ["method=daflow_random"])
    record = run_training(cfg)
    assert record["n_params"] == 0 and record["auc"] == pytest.approx(saved_auc(tmp_path / "run", cfg), abs=1e-12)
    ckpt = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)
    actnorm = [v for k, v in ckpt["state_dict"].items() if k.endswith("actnorm.initialized")]
    assert actnorm and all(int(v) == 1 for v in actnorm)  # ActNorm saw one training batch


def test_random_projection_fits_a_gaussian_to_the_projected_windows():
    model = DAFlow(seg_len=4, mode="random_projection", random_kind="projection")
    x = torch.randn(500, 2, 4, 18) * 2 + 1
    model.fit_statistics([{"x": x[:250]}, {"x": x[250:]}])
    z = x.flatten(1) @ model.projection.t()
    assert torch.allclose(model.z_mean, z.mean(0), atol=1e-4)
    assert torch.allclose(model.z_var, z.var(0, unbiased=False), rtol=1e-3)
    far = model.score({"x": x[:5] + 10})
    assert torch.all(far > model.score({"x": x[:5]}))


# -- hyperbolic maths: our channel-first ops against geoopt's -----------------------------------
@pytest.fixture(params=[1.0, 0.5])
def ball(request):
    return hyp.poincare_ball(request.param)


def test_ball_operations_match_geoopt(ball):
    torch.manual_seed(0)
    c = ball.c
    u = torch.randn(7, 4, dtype=torch.float64)
    v = torch.randn(7, 4, dtype=torch.float64) * 0.3
    x, y = ball.expmap0(u), ball.expmap0(v)
    cf = lambda t: t.t()[None, :, :, None]  # (7, 4) -> (1, 4, 7, 1): channel-first  # noqa: E731
    back = lambda t: t[0, :, :, 0].t()  # noqa: E731
    torch.testing.assert_close(back(hyp.expmap0(cf(u), c)), x)
    torch.testing.assert_close(back(hyp.logmap0(cf(x), c)), ball.logmap0(x))
    torch.testing.assert_close(back(hyp.mobius_add(cf(x), cf(y), c)), ball.mobius_add(x, y))
    torch.testing.assert_close(back(hyp.lambda_x(cf(x), c)), ball.lambda_x(x, keepdim=True))
    W = torch.randn(4, 4, dtype=torch.float64)
    torch.testing.assert_close(back(hyp.expmap0(cf(u @ W.t()), c)), ball.mobius_matvec(W, x))  # identity used in the layer
    far = hyp.expmap0(cf(u * 40), c)  # tanh saturates: the point is projected just inside the ball
    torch.testing.assert_close(hyp._norm(far), torch.full_like(hyp._norm(far), (1 - hyp.BALL_EPS) / float(c) ** 0.5))
    torch.testing.assert_close(far, hyp.project(far, c))


def test_gyromidpoint_matches_geoopt(ball):
    torch.manual_seed(1)
    x = ball.expmap0(torch.randn(5, 3, dtype=torch.float64))
    w = torch.rand(5, dtype=torch.float64)
    ours = hyp.gyromidpoint(x.t()[None, :, None, :], w[:, None], ball.c)  # (1, 3, 1, 1)
    ref = ball.weighted_midpoint(x, w, reducedim=[0])
    torch.testing.assert_close(ours[0, :, 0, 0], ref)
    # a point is its own midpoint; far points pull harder than a Euclidean mean would
    torch.testing.assert_close(hyp.gyromidpoint(x.t()[None, :, None, :1], torch.ones(1, 1, dtype=torch.float64), ball.c)[0, :, 0, 0], x[0])
    x4 = hyp.project(torch.randn(2, 3, 4, 5, dtype=torch.float64) * 0.4, ball.c)
    A = torch.rand(5, 5, dtype=torch.float64)
    torch.testing.assert_close(hyp.gyromidpoint_log0(x4, A, ball.c), hyp.logmap0(hyp.gyromidpoint(x4, A, ball.c), ball.c))


def _composed_layer(u, W, b, A, c, max_norm):
    """The layer written as the ball functions in a row (the reference for the scalar form)."""
    x = hyp.expmap0(torch.einsum("oc,bctv->botv", W, hyp.clip_norm(u, max_norm)), c)
    return hyp.gyromidpoint_log0(hyp.mobius_add(x, b, c), A, c)


@pytest.mark.parametrize("scale", [0.05, 1.0, 30.0])  # 30: clip, expmap0 saturation and projections all active
def test_scalar_form_layer_equals_the_ball_functions(ball, scale):
    torch.manual_seed(2)
    dt = torch.float64
    u = (scale * torch.randn(3, 4, 5, 6, dtype=dt)).requires_grad_()
    W = torch.randn(4, 4, dtype=dt).requires_grad_()
    beta = (0.5 * torch.randn(1, 4, 1, 1, dtype=dt)).requires_grad_()
    A, g = torch.rand(6, 6, dtype=dt), torch.randn(3, 4, 5, 6, dtype=dt)
    outs = []
    for layer in (_composed_layer, hyp.hyperbolic_layer_log0):
        b = hyp.expmap0(hyp.clip_norm(beta, 2.0), ball.c)
        out = layer(u, W, b, A, ball.c, 2.0)
        outs.append((out, *torch.autograd.grad((out * g).sum(), [u, W, beta])))
    for ref, ours in zip(*outs):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10)


def test_compiled_hyperbolic_layer_matches_eager_and_falls_back(monkeypatch, caplog):
    torch.manual_seed(3)
    model = DSNF(seg_len=8, compile_hyperbolic=True).train()
    eager = DSNF(seg_len=8, compile_hyperbolic=False).train()
    eager.load_state_dict(model.state_dict())
    batch = {"x": torch.randn(16, 2, 8, 18)}
    losses = []
    for m in (model, eager):
        loss = m.loss(batch)["loss"]
        loss.backward()
        losses.append((loss, [p.grad for p in m.parameters()]))
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(losses[0][1], losses[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # where compiling fails, one warning and the eager function, same loss
    def broken(fn, **kw):
        def call(*args):
            raise RuntimeError("no C++ compiler")
        return call
    monkeypatch.setattr(hyp, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level("WARNING", logger="vadflow.nn.hyperbolic"):
        torch.testing.assert_close(model.loss(batch)["loss"], losses[1][0], rtol=1e-5, atol=1e-5)
        model.loss(batch)
    assert sum("running it eagerly" in r.message for r in caplog.records) == 1


def test_hyperbolic_branch_survives_extreme_inputs_in_bf16():
    model = DSNF(seg_len=8, learnable_curvature=True)
    x = torch.randn(4, 2, 8, 18) * 1e4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.loss({"x": x})
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert model.ball.isp_c.grad is not None and torch.isfinite(model.ball.isp_c.grad)


# -- AWAM -------------------------------------------------------------------------------------
def test_awam_weights_follow_the_documented_formula():
    l = torch.tensor([1.0, 2.0, 3.0, 10.0])
    awam = AWAM(tau=1.0, lam=0.5, w_max=100.0)
    u = (l - l.mean()) / (l.std() + 1e-6)
    expected = 0.5 + 0.5 * 4 * torch.softmax(u, 0)
    torch.testing.assert_close(awam.sample_weights(l), expected)
    assert awam(l) == pytest.approx(float((expected * l).sum() / expected.sum()))
    assert awam(l) > MeanNLL()(l)  # hard samples weigh more
    assert AWAM(lam=0.0)(l) == pytest.approx(float(l.mean()))
    assert AWAM(tau=0.01, lam=1.0, w_max=2.0).sample_weights(l).max() == 2.0
    with pytest.raises(ValueError):
        AWAM(tau=0.0)


def test_objective_weights_named_terms_over_method_defaults():
    terms = {"nll": torch.tensor([1.0, 3.0]), "commit": torch.tensor([2.0, 2.0])}
    assert Objective()(terms) == pytest.approx(4.0)
    assert Objective({"commit": 0.25})(terms, defaults={"commit": 0.5}) == pytest.approx(2.5)
    assert Objective()(terms, defaults={"commit": 0.5}) == pytest.approx(3.0)
    awam_grad = torch.tensor([1.0, 5.0], requires_grad=True)
    AWAM()(awam_grad).backward()
    assert awam_grad.grad[1] > awam_grad.grad[0] > 0  # weights are detached constants


@pytest.mark.parametrize("method,loss", [("daflow", "nll"), ("daflow", "awam"), ("dsnf", "awam"), ("dsnf", "nll")])
def test_trains_end_to_end_in_bf16(method, loss, tiny_overrides, tmp_path):
    cfg = compose("train", tiny_overrides + [f"method={method}", f"loss={loss}", "trainer.precision=bf16-mixed"])
    record = run_training(cfg)
    scores = np.load(tmp_path / "run" / "window_scores.npz")["score"]
    assert np.isfinite(scores).all() and record["method"] == method
    assert record["auc"] == pytest.approx(saved_auc(tmp_path / "run", cfg), abs=1e-12)
