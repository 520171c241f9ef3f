"""GMFC-VAE (ported to poses, reconstructed): mixture energy, architecture, masking, scoring,
training end to end (nll, gmm_energy, bf16), energy maps and the localisation figure."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from vadflow.losses import GMMEnergy, MeanNLL
from vadflow.methods import METHODS
from vadflow.methods.gmfcvae import GMFCVAE, gmm_log_density
from vadflow.train import run_training

from .conftest import compose, saved_auc


def small(**kw):
    torch.manual_seed(0)
    return GMFCVAE(seg_len=8, hidden=4, latent_dim=3, depth=1, n_components=2, **kw)


def batch(b=3, t=8, v=18, vis=None):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 2, t, v, generator=g)
    vis = torch.ones(b, t, v, dtype=torch.bool) if vis is None else vis
    return {"x": x, "vis": vis, "index": torch.arange(b)}


def test_registered():
    assert METHODS["gmfcvae"] is GMFCVAE


def test_energy_is_the_hand_computed_mixture_log_density():
    z = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    logits = torch.tensor([0.0, math.log(3.0)])  # pi = 1/4, 3/4
    means = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    logvars = torch.tensor([[0.0, 0.0], [math.log(4.0), math.log(0.25)]])
    want = []
    for zi in z.tolist():
        p = 0.0
        for pi, mu, var in ((0.25, (0, 0), (1, 1)), (0.75, (1, -1), (4, 0.25))):
            dens = 1.0
            for d in range(2):
                dens *= math.exp(-0.5 * (zi[d] - mu[d]) ** 2 / var[d]) / math.sqrt(2 * math.pi * var[d])
            p += pi * dens
        want.append(math.log(p))
    got = gmm_log_density(z, logits, means, logvars)
    assert torch.allclose(got, torch.tensor(want), atol=1e-5)
    # the model's energy is its negative, per stream prior
    m = small()
    vae = m.vaes["appearance"]
    with torch.no_grad():
        vae.prior_logits.copy_(logits)
        vae.prior_means.copy_(torch.cat([means, torch.zeros(2, 1)], 1))
        vae.prior_logvars.copy_(torch.cat([logvars, torch.zeros(2, 1)], 1))
    z3 = torch.cat([z, torch.zeros(2, 1)], 1)
    assert torch.allclose(vae.energy(z3), -torch.tensor(want) + 0.5 * math.log(2 * math.pi), atol=1e-5)


def test_fully_convolutional_no_linear_layers():
    m = GMFCVAE()
    assert not any(isinstance(mod, nn.Linear) for mod in m.modules())
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert convs and all(c.kernel_size[1] == 1 for c in convs)  # 1x1 or (k, 1): nothing spans joints
    # the same model runs on another window length: no layer depends on T
    b = batch(t=13)
    assert m.score_map(b).shape == (3, 13, 18)


def test_energy_map_shapes_and_window_score():
    m = small().eval()
    b = batch()
    with torch.no_grad():
        emap = m.score_map(b)
        assert emap.shape == (3, 8, 18) and emap.dtype == torch.float32
        m.score_reduce = "max"
        assert torch.allclose(m.score(b), emap.amax((1, 2)))
        m.score_reduce = "mean"
        assert torch.allclose(m.score(b), emap.mean((1, 2)))
        only_app = small(streams=["appearance"]).eval()
        assert only_app.score_map(b).shape == (3, 8, 18)


def test_stream_weights_fuse_energies():
    m = small(stream_weights={"appearance": 2.0, "motion": 0.5}).eval()
    b = batch()
    with torch.no_grad():
        ins = m.stream_inputs(b)
        want = 2.0 * m.vaes["appearance"].energy_map(ins["appearance"][0]) + 0.5 * m.vaes["motion"].energy_map(ins["motion"][0])
        assert torch.allclose(m.score_map(b), want)


def test_visibility_masking_all_visible_changes_nothing():
    m = small()
    b = batch()
    torch.manual_seed(5)
    masked = m.loss(b)
    torch.manual_seed(5)
    unmasked = m.loss({k: v for k, v in b.items() if k != "vis"})  # no vis = every joint observed
    for key in ("loss", "recon", "kl", "energy"):
        assert torch.allclose(masked[key], unmasked[key])
    m.eval()
    with torch.no_grad():
        assert torch.allclose(m.score(b), m.score({k: v for k, v in b.items() if k != "vis"}))


def test_imputed_joints_are_ignored_by_the_reconstruction_loss_and_the_score():
    # depth 0: encoder and decoder are per-location (1x1), so a joint's value reaches only its own
    # location; the appearance stream alone (velocities mix neighbouring frames by definition)
    torch.manual_seed(0)
    m = GMFCVAE(seg_len=8, hidden=4, latent_dim=3, depth=0, n_components=2, streams=["appearance"]).eval()
    b = batch()
    vis = torch.ones(3, 8, 18, dtype=torch.bool)
    vis[:, :, 4] = False
    vis[0, 2, 7] = False
    x2 = b["x"].clone()
    x2[:, :, :, 4] += 5.0
    x2[0, :, 2, 7] -= 3.0
    b1, b2 = dict(b, vis=vis), dict(b, x=x2, vis=vis)
    with torch.no_grad():
        vae = m.vaes["appearance"]
        assert torch.allclose(vae.terms(b["x"], vis.float())["recon"], vae.terms(x2, vis.float())["recon"])
        assert not torch.allclose(vae.terms(b["x"], torch.ones_like(vis).float())["recon"], vae.terms(x2, torch.ones_like(vis).float())["recon"])
        for reduce in ("max", "mean"):
            m.score_reduce = reduce
            assert torch.allclose(m.score(b1), m.score(b2))
        emap = m.score_map(b1)
        assert torch.allclose(m.score(b1)[1:], emap[1:, :, [j for j in range(18) if j != 4]].mean((1, 2)))
        m.mask_imputed = False  # then imputed joints count like observed ones
        assert torch.allclose(m.score(b1), emap.mean((1, 2)))
        assert not torch.allclose(m.score(b1), m.score(b2))
        m.mask_imputed = True
        none = torch.zeros(3, 8, 18, dtype=torch.bool)  # nothing observed: every location counts
        assert torch.allclose(m.score(dict(b, vis=none)), emap.mean((1, 2)))


def test_loss_terms_and_objectives_compose():
    b = batch()
    m = small()
    out = m.loss(b)
    assert {"loss", "recon", "kl", "energy", "cov", "recon_motion", "kl_appearance"} <= set(out)
    torch.manual_seed(0)
    plain = small(objective=MeanNLL()).loss(b)
    assert torch.allclose(plain["loss"], plain["recon"] + plain["kl"], rtol=1e-5)  # nll = negative ELBO
    torch.manual_seed(0)
    w = {"recon": 1.0, "kl": 0.5, "energy": 0.1, "cov": 0.005}
    reg = small(objective=GMMEnergy(w)).loss(b)
    want = reg["recon"] + 0.5 * reg["kl"] + 0.1 * reg["energy"] + 0.005 * reg["cov"]
    assert torch.allclose(reg["loss"], want, rtol=1e-5)
    reg["loss"].backward()


def test_gmm_energy_loss_with_stgnf():
    from vadflow.methods.stgnf import STGNF

    m = STGNF(seg_len=8, objective=GMMEnergy({"recon": 1.0, "kl": 1.0}))
    assert torch.isfinite(m.loss(batch())["loss"])


@pytest.mark.parametrize("loss", ["nll", "gmm_energy", "awam"])
def test_trains_end_to_end(loss, tiny_overrides, tmp_path):
    cfg = compose("train", tiny_overrides + ["method=gmfcvae", f"loss={loss}"])
    record = run_training(cfg)
    assert record["method"] == "gmfcvae" and record["auc"] == pytest.approx(saved_auc(tmp_path / "run", cfg), abs=1e-12)
    assert np.isfinite(np.load(tmp_path / "run" / "window_scores.npz")["score"]).all()


def test_bf16_mixed_training_is_finite(tiny_overrides, tmp_path):
    record = run_training(compose("train", tiny_overrides + ["method=gmfcvae", "loss=gmm_energy", "trainer.precision=bf16-mixed"]))
    assert record["precision"] == "bf16-mixed"
    ckpt = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    scores = np.load(tmp_path / "run" / "window_scores.npz")["score"]
    assert np.isfinite(scores).all() and len(np.unique(scores)) > 0.9 * len(scores)


def test_bf16_autocast_loss_is_fp32_and_finite():
    m = small()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = m.loss(batch())
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_energy_maps_and_localisation_png(tiny_overrides, tmp_path):
    from vadflow.evaluate import run_evaluation
    from vadflow.localize import main as localize

    run_training(compose("train", tiny_overrides + ["method=gmfcvae", "loss=gmm_energy"]))
    cfg = compose("eval", [f"ckpt_path={tmp_path / 'run' / 'model.ckpt'}", f"paths.output_dir={tmp_path / 'eval'}",
                           f"paths.cache_dir={tmp_path / 'cache'}", "+trainer.enable_progress_bar=false", "threads=1", "save_maps=true"])
    run_evaluation(cfg)
    z = np.load(tmp_path / "eval" / "score_maps.npz")
    scores = np.load(tmp_path / "eval" / "window_scores.npz")
    assert z["maps"].shape == (len(scores["index"]), 24, 18) and z["maps"].dtype == np.float16
    order = np.argsort(z["index"])
    assert np.allclose(z["score"][order], scores["score"][np.argsort(scores["index"])], rtol=1e-5)
    clip = str(z["clip"][0])
    out = tmp_path / "loc.png"
    assert localize(["--maps", str(tmp_path / "eval" / "score_maps.npz"), "--clip", clip, "--top", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert localize(["--maps", str(tmp_path / "eval" / "score_maps.npz"), "--clip", "nope", "--out", str(out)]) == 2
