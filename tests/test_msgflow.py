"""MSG-Flow (reconstructed): vector quantiser, causal token Transformer, conditional flow, score
standardisation, both training modes, bf16, and the primitives command."""
import json

import numpy as np
import pytest
import torch

from vadflow.methods.msgflow import MSGFlow
from vadflow.nn.vq import VectorQuantizer
from vadflow.train import run_training

from .conftest import compose, saved_auc

# -- vector quantiser ----------------------------------------------------------------------


def test_vq_straight_through_gradient_and_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, ema=False)
    vq.train()
    z = torch.randn(5, 3, 4, requires_grad=True)
    out = vq(z)
    torch.testing.assert_close(out.q, vq.codebook[out.codes].detach())  # forward value = the code
    (out.q * torch.arange(4.0)).sum().backward()
    torch.testing.assert_close(z.grad, torch.arange(4.0).expand(5, 3, 4))  # gradient passes straight through
    assert out.codes.shape == (5, 3) and out.commit.shape == (5, 3)


def test_vq_gradient_codebook_gets_the_codebook_term():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, ema=False)
    vq.train()
    assert isinstance(vq.embed, torch.nn.Parameter)
    out = vq(torch.randn(64, 4))
    out.codebook.sum().backward()
    assert vq.embed.grad is not None and vq.embed.grad.abs().sum() > 0


def test_vq_ema_update_moves_codes_to_their_cluster_means():
    vq = VectorQuantizer(2, 2, ema=True, decay=0.5, restart=False)
    assert not isinstance(vq.embed, torch.nn.Parameter)
    vq.initialized.fill_(1)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    vq.embed_sum.copy_(vq.embed)
    vq.cluster_size.fill_(1.0)
    data = torch.cat([torch.full((50, 2), 1.0), torch.full((50, 2), 9.0)])
    vq.train()
    out = vq(data)
    assert out.codebook is None  # EMA: no codebook loss term
    # one EMA step: sum = 0.5 * old + 0.5 * batch sum, size = 0.5 * 1 + 0.5 * 50 (Laplace-smoothed)
    size = torch.tensor([25.5, 25.5])
    n = size.sum()
    smoothed = (size + vq.eps) / (n + 2 * vq.eps) * n
    expect = torch.stack([(0.5 * torch.zeros(2) + 0.5 * 50 * torch.ones(2)) / smoothed[0],
                          (0.5 * torch.full((2,), 10.0) + 0.5 * 50 * torch.full((2,), 9.0)) / smoothed[1]])
    torch.testing.assert_close(vq.embed, expect)
    for _ in range(30):
        vq(data)
    torch.testing.assert_close(vq.embed, torch.tensor([[1.0, 1.0], [9.0, 9.0]]), atol=1e-3, rtol=0)
    vq.eval()
    before = vq.embed.clone()
    vq(torch.randn(10, 2))
    torch.testing.assert_close(vq.embed, before)  # no update in eval mode


@pytest.mark.parametrize("ema", [True, False])
def test_dead_codes_are_restarted(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 2, ema=ema, decay=0.5, dead_threshold=0.1, usage_decay=0.5)
    vq.train()
    data = lambda: torch.randn(256, 2) * 0.1 + torch.tensor([5.0, -5.0])
    vq(data())  # initialise from data
    with torch.no_grad():
        vq.embed.data[:8] = 100.0  # half the codes far from every input: dead
    for _ in range(8):
        vq(data())
    assert (vq.embed.data - torch.tensor([5.0, -5.0])).abs().max() < 2.0  # all codes back near the data
    # directly: codes with (almost) no usage are replaced by encoder outputs, the others kept
    vq.usage.fill_(10.0)
    vq.usage[[1, 3]] = 0.0
    with torch.no_grad():
        vq.embed.data[[1, 3]] = -100.0
    kept = vq.embed.data.clone()
    assert vq.restart_dead(data()) == 2
    assert (vq.embed.data[[1, 3]] - torch.tensor([5.0, -5.0])).abs().max() < 1.0
    keep = [k for k in range(16) if k not in (1, 3)]
    torch.testing.assert_close(vq.embed.data[keep], kept[keep])
    assert (vq.usage[[1, 3]] > 0).all()


def test_vq_perplexity():
    vq = VectorQuantizer(4, 2, restart=False)
    vq.eval()
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    assert vq(vq.embed.clone()).perplexity.item() == pytest.approx(4.0, rel=1e-5)
    assert vq(torch.zeros(7, 2)).perplexity.item() == pytest.approx(1.0, rel=1e-5)


def test_vq_distances_are_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4)
    vq.eval()
    z = torch.randn(100, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(z.bfloat16())
    torch.testing.assert_close(out.codes, vq(z).codes)
    assert out.commit.dtype == torch.float32


# -- model pieces --------------------------------------------------------------------------


def _trained_like(seg_len=8, **kw):
    torch.manual_seed(0)
    model = MSGFlow(seg_len=seg_len, **kw).double()
    model.train()
    model.loss({"x": torch.randn(64, 2, seg_len, 18, dtype=torch.float64)})  # initialise ActNorm, BN stats, codebook
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    return model.eval()


def test_transformer_is_causal():
    model = _trained_like(seg_len=24)
    tf = model.conditioner.transformer
    codes = torch.randint(0, 32, (3, model.conditioner.n_tokens))
    logits = tf(codes)
    for t in range(model.conditioner.n_tokens - 1):
        changed = codes.clone()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 32
        other = tf(changed)
        # logits[:, j] predicts token j from tokens < j: tokens >= t+1 must not move logits <= t+1
        torch.testing.assert_close(other[:, : t + 2], logits[:, : t + 2])
        if t + 2 < model.conditioner.n_tokens:
            assert not torch.allclose(other[:, t + 2], logits[:, t + 2])


def test_conditional_flow_log_determinant_is_exact():
    model = _trained_like()
    x = torch.randn(1, 2, 8, 18, dtype=torch.float64)
    xs, _ = model.conditioner.subwindows(x)
    cond = model.conditioner.condition(model.conditioner.quantizer(model.conditioner.encoder(xs), update=False).q, 8)  # held fixed: p(x | tokens)
    assert cond.shape == (1, model.conditioner.quantizer.dim, 8, 1) and cond.abs().sum() > 0
    jac = torch.autograd.functional.jacobian(lambda v: model.flow(v.view(1, 2, 8, 18), cond)[0].flatten(), x.flatten(), vectorize=True)
    _, logdet = model.flow(x, cond)
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-8)
    # and the condition matters
    z0, _ = model.flow(x, cond)
    z1, _ = model.flow(x, cond + 1.0)
    assert not torch.allclose(z0, z1)


def test_subwindows_pad_and_mask_missing_joints():
    model = MSGFlow(seg_len=10, sub_len=4)
    assert model.conditioner.n_tokens == 3
    x = torch.randn(2, 2, 10, 18)
    vis = torch.ones(2, 10, 18, dtype=torch.bool)
    vis[0, 1, 3] = False
    xs, ws = model.conditioner.subwindows(x, vis)
    assert xs.shape == ws.shape == (2, 3, 2 * 4 * 18)
    w = ws.view(2, 3, 2, 4, 18)
    assert w[0, 0, :, 1, 3].eq(0).all() and w[1, 0, :, 1, 3].eq(1).all()  # imputed joint: no reconstruction loss
    assert w[:, 2, :, 2:].eq(0).all() and w[:, 2, :, :2].eq(1).all()  # padded frames 10, 11 too
    torch.testing.assert_close(xs.view(2, 3, 2, 4, 18)[:, 2, :, 3], x[:, :, 9])  # padding repeats the last frame


def test_score_uses_fitted_statistics_and_survives_a_reload():
    model = _trained_like(seg_len=24).float()
    batches = [{"x": torch.randn(16, 2, 24, 18), "index": torch.arange(16)} for _ in range(3)]
    tok, flow = model.components(batches[0])
    torch.testing.assert_close(model.score(batches[0]), tok + flow)  # before fitting: mean 0, std 1
    model.fit_statistics(batches)
    parts = torch.cat([torch.stack(model.components(b), 1) for b in batches]).double()
    torch.testing.assert_close(model.stat_mean, parts.mean(0).float())
    torch.testing.assert_close(model.stat_std, parts.std(0, unbiased=False).float())
    assert model.stats_fitted.item() == 1
    expect = (tok - model.stat_mean[0]) / model.stat_std[0] + (flow - model.stat_mean[1]) / model.stat_std[1]
    torch.testing.assert_close(model.score(batches[0]), expect)
    fresh = MSGFlow(seg_len=24)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    torch.testing.assert_close(fresh.score(batches[0]), model.score(batches[0]))
    scored = torch.cat([model.score(b) for b in batches])
    assert abs(scored.mean().item()) < 1e-4  # standardised on these windows: mean 0


def test_loss_terms_and_weights():
    torch.manual_seed(0)
    batch = {"x": torch.randn(8, 2, 24, 18), "vis": torch.rand(8, 24, 18) > 0.2}
    model = MSGFlow(vq_ema=False)
    model.train()
    out = model.loss(batch)
    assert {"loss", "nll", "token_nll", "recon", "commit", "codebook", "perplexity"} <= set(out)
    assert "codebook" not in MSGFlow(vq_ema=True).train().loss(batch)  # EMA: no codebook term
    out["loss"].backward()
    for name in ("conditioner.encoder", "conditioner.decoder", "conditioner.transformer", "flow", "conditioner.quantizer"):
        grads = [p.grad for p in model.get_submodule(name).parameters()]
        assert grads and all(g is not None for g in grads), name


def test_staged_training_switches_at_stage_steps():
    torch.manual_seed(0)
    batch = {"x": torch.randn(8, 2, 24, 18)}
    model = MSGFlow(training="staged", stage_steps=2)
    model.train()
    for _ in range(2):
        out = model.loss(batch)
        assert "nll" not in out and "recon" in out
        out["loss"].backward()
    model.zero_grad()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("conditioner.encoder.", "conditioner.quantizer."))}
    assert frozen
    out = model.loss(batch)
    for k, v in frozen.items():  # VQ frozen: no EMA update, no restart, no BatchNorm statistics update
        torch.testing.assert_close(model.state_dict()[k], v, msg=k)
    assert model.conditioner.encoder.training
    assert {"nll", "token_nll"} <= set(out) and "recon" not in out and "commit" not in out
    out["loss"].backward()
    assert all(p.grad is None for p in model.conditioner.encoder.parameters())  # VQ frozen in stage 2
    assert all(p.grad is not None for p in model.flow.parameters())
    assert int(model.conditioner.step) == 3


# -- end to end ----------------------------------------------------------------------------

SMALL = ["method=msgflow", "method.batch_size=64", "conditioner.num_codes=8", "conditioner.tf_layers=1"]


@pytest.mark.parametrize("loss", ["vq", "nll", "awam"])
def test_trains_end_to_end(tiny_overrides, tmp_path, loss):
    cfg = compose("train", tiny_overrides + SMALL + [f"loss={loss}"])
    record = run_training(cfg)
    assert record["method"] == "msgflow" and record["auc"] == pytest.approx(saved_auc(tmp_path / "run", cfg), abs=1e-12)
    ckpt = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)
    sd = ckpt["state_dict"]
    assert sd["stats_fitted"] == 1 and (sd["stat_std"] > 0).all()
    assert sd["conditioner.quantizer.initialized"] == 1 and sd["flow.steps.0.actnorm.initialized"] == 1
    assert np.isfinite(np.load(tmp_path / "run" / "window_scores.npz")["score"]).all()


def test_staged_mode_end_to_end(tiny_overrides, tmp_path):
    cfg = compose("train", tiny_overrides + SMALL + ["loss=vq", "conditioner.training=staged", "conditioner.stage_steps=3",
                                                     "trainer.max_epochs=2"])
    record = run_training(cfg)
    sd = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)["state_dict"]
    assert int(sd["conditioner.step"]) > 3 and sd["flow.steps.0.actnorm.initialized"] == 1
    assert record["auc"] == pytest.approx(saved_auc(tmp_path / "run", cfg), abs=1e-12)


@pytest.mark.parametrize("ema", ["true", "false"])
def test_bf16_mixed_training_is_finite(tiny_overrides, tmp_path, ema):
    record = run_training(compose("train", tiny_overrides + SMALL + ["loss=vq", "trainer.precision=bf16-mixed", f"conditioner.vq_ema={ema}"]))
    assert record["precision"] == "bf16-mixed"
    scores = np.load(tmp_path / "run" / "window_scores.npz")["score"]
    assert np.isfinite(scores).all() and len(np.unique(scores)) > 0.9 * len(scores)
    sd = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v.float()).all() for v in sd.values())


def test_primitives_command_writes_pngs(tiny_overrides, tmp_path, capsys):
    from vadflow.primitives import main

    run_training(compose("train", tiny_overrides + SMALL + ["loss=vq"]))
    out = tmp_path / "prims"
    assert main(["--run", str(tmp_path / "run"), "--out", str(out), "--top", "3", "--cache-dir", str(tmp_path / "cache"),
                 "--data-root", str(tmp_path)]) == 0
    assert (out / "codebook_usage.png").stat().st_size > 1000
    info = json.loads((out / "primitives.json").read_text())
    assert len(info["counts"]) == 8 and sum(info["counts"]) > 0 and 1 <= len(info["codes_drawn"]) <= 3
    for k in info["codes_drawn"]:
        assert (out / f"code_{k}.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def test_primitives_rejects_other_methods(tiny_overrides, tmp_path):
    from vadflow.primitives import main

    run_training(compose("train", tiny_overrides))  # STG-NF
    with pytest.raises(SystemExit) as exc:
        main(["--run", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--data-root", str(tmp_path)])
    assert exc.value.code == 2
