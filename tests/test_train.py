"""End to end on small synthetic data: train, write the run dir, reload, evaluate, reproduce."""
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

from vadflow.evaluate import run_evaluation
from vadflow.train import run_training

from .conftest import compose, saved_auc

REQUIRED = {"method", "dataset", "protocol", "seed", "auc", "auc_raw", "auc_macro", "n_clips", "n_frames",
            "n_windows", "n_params", "train_seconds", "eval_seconds", "git_commit"}


def test_train_writes_a_complete_run_directory(tiny_overrides, tmp_path):
    cfg = compose("train", tiny_overrides)
    record = run_training(cfg)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert REQUIRED <= set(metrics)
    assert metrics == json.loads(json.dumps(record))
    assert metrics["auc"] == pytest.approx(saved_auc(run, cfg), abs=1e-12) and metrics["n_params"] == 616
    assert set(metrics["protocols"]) == {"stgnf", "mpedrnn", "mocodad"}
    for res in metrics["protocols"].values():  # every protocol: AUC-ROC, AUC-PR and EER
        assert {"auc", "auc_pr", "eer"} <= set(res) and 0 < res["eer"] < 1
    assert metrics["protocols"]["mocodad"]["score_offset"] == pytest.approx(np.quantile(np.load(run / "window_scores.npz")["train_score"], 0.01))
    ckpt = torch.load(run / "model.ckpt", weights_only=True)  # plain containers only
    assert ckpt["method"]["name"] == "stgnf" and ckpt["state_dict"]["flow.steps.0.actnorm.initialized"] == 1
    scores = np.load(run / "window_scores.npz")
    assert len(scores["index"]) == metrics["n_windows"] == len(np.unique(scores["index"]))


def test_checkpoint_reload_gives_the_same_auc(tiny_overrides, tmp_path):
    record = run_training(compose("train", tiny_overrides))
    cfg = compose("eval", [f"ckpt_path={tmp_path / 'run' / 'model.ckpt'}", f"paths.output_dir={tmp_path / 'eval'}",
                           f"paths.cache_dir={tmp_path / 'cache'}", "+trainer.enable_progress_bar=false", "threads=1"])
    again = run_evaluation(cfg)
    assert again["auc"] == pytest.approx(record["auc"], abs=1e-9)
    assert again["dataset"] == "synthetic"


def test_same_seed_same_auc(tiny_overrides, tmp_path):
    a = run_training(compose("train", tiny_overrides + ["seed=3"]))
    b = run_training(compose("train", [o.replace("/run", "/run2") for o in tiny_overrides] + ["seed=3"]))
    assert a["auc"] == b["auc"] and a["auc_raw"] == b["auc_raw"]


def test_missing_data_root_is_a_clear_error(tiny_overrides, tmp_path):
    from vadflow.data.types import DataError

    cfg = compose("train", tiny_overrides + ["dataset=hr_avenue", f"paths.data_root={tmp_path / 'nowhere'}"])
    with pytest.raises(DataError, match="nowhere.*VADFLOW_DATA"):
        run_training(cfg)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vadflow.train", "dataset=hr_avenue", f"paths.data_root={tmp_path}", f"hydra.run.dir={tmp_path / 'o'}", "logger=none"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "vadflow: error:" in out.stderr and "Traceback" not in out.stderr


def test_prepare_entry_point_builds_then_reuses_the_cache(tmp_path, capsys):
    from vadflow.prepare import run_prepare

    overrides = [f"paths.cache_dir={tmp_path}", f"paths.output_dir={tmp_path}", "threads=1", "+dataset.synthetic.n_train_clips=2", "+dataset.synthetic.n_test_clips=2"]
    assert not run_prepare(compose("prepare", overrides))["cached"]
    assert run_prepare(compose("prepare", overrides))["cached"]
    assert "loaded from cache" in capsys.readouterr().out


def test_bf16_mixed_training_is_finite_and_scores_in_fp32(tiny_overrides, tmp_path):
    record = run_training(compose("train", tiny_overrides + ["trainer.precision=bf16-mixed"]))
    assert record["precision"] == "bf16-mixed"
    scores = np.load(tmp_path / "run" / "window_scores.npz")["score"]
    assert np.isfinite(scores).all()
    assert len(np.unique(scores)) > 0.9 * len(scores)  # fp32 scores: almost no ties


def test_output_is_quiet_and_a_redirected_log_has_one_line_per_epoch(tmp_path):
    """No Lightning start-up lines or tips and no progress bar when stdout is not a terminal: one
    line per epoch instead; ``verbose=true`` brings Lightning's lines back."""
    base = [sys.executable, "-m", "vadflow.train", "trainer.max_epochs=2", "logger=none", "threads=1", f"paths.cache_dir={tmp_path / 'cache'}",
            "+dataset.synthetic.n_train_clips=2", "+dataset.synthetic.n_test_clips=2", "+dataset.synthetic.clip_len=150"]
    quiet = subprocess.run(base + [f"hydra.run.dir={tmp_path / 'a'}"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    text = quiet.stdout + quiet.stderr
    assert "GPU available" not in text and "Tip" not in text and "it/s" not in text
    assert [line.split(" |")[0] for line in quiet.stdout.splitlines() if line.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    loud = subprocess.run(base + [f"hydra.run.dir={tmp_path / 'b'}", "verbose=true"], capture_output=True, text=True, timeout=300)
    assert "GPU available" in loud.stdout + loud.stderr


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_logged_training_terms_are_the_batch_weighted_epoch_means(capsys):
    """Each term is logged once per epoch, as the mean over the epoch's windows (batches of 4, 4 and 2
    windows weigh 4, 4 and 2), and the one-line-per-epoch callback already prints that epoch's values."""
    import lightning as L
    from torch.utils.data import DataLoader

    from vadflow.console import EpochLines
    from vadflow.module import AnomalyModule

    class Constant(torch.nn.Module):
        """A loss equal to its batch's mean x (plus 0 * a parameter, so there is something to train)."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch):
            value = batch["x"].mean() + 0 * self.w
            return {"loss": value, "twice": 2 * value.detach()}

    windows = torch.arange(10, dtype=torch.float32)
    loader = DataLoader(list(range(10)), batch_size=4, collate_fn=lambda idx: {"x": windows[idx]})
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1, callbacks=[EpochLines()])
    trainer.fit(AnomalyModule(Constant()), train_dataloaders=loader)
    expected = windows.mean().item()  # (4 * 1.5 + 4 * 5.5 + 2 * 8.5) / 10 = 4.5, not the batch mean 5.17
    assert trainer.callback_metrics["train/loss"].item() == pytest.approx(expected)
    assert trainer.callback_metrics["train/twice"].item() == pytest.approx(2 * expected)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and all("train/loss 4.5 " in line and "train/twice 9 " in line for line in lines)
    # an epoch cut short by max_steps still logs the mean over the batches it trained on
    short = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", devices=1)
    short.fit(AnomalyModule(Constant()), train_dataloaders=loader)
    assert short.callback_metrics["train/loss"].item() == pytest.approx(windows[:8].mean().item())


@pytest.mark.parametrize("shared", [False, True])
def test_epoch_pairs_time_whole_epochs_of_each_method_alternating(shared, capsys, monkeypatch, tmp_path):
    """``vadflow.bench --epoch-pairs``: one timed epoch per method and round (after an untimed one),
    each in a fresh process or, with ``--shared-process``, all in this one; printed with the second
    method's share over the first."""
    from vadflow import bench

    monkeypatch.setenv("VADFLOW_DATA", str(tmp_path))  # the synthetic dataset needs no data root
    monkeypatch.setenv("VADFLOW_CACHE", str(tmp_path / "cache"))
    children = []
    run_child = bench.run_child
    monkeypatch.setattr(bench, "run_child", lambda cmd, env=None: children.append(cmd) or run_child(cmd, env))
    threads, lightning_log = torch.get_num_threads(), logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    try:
        bench.main(["--epoch-pairs", "2", "--methods", "stgnf", "stgnf+trajectory", "--dataset", "synthetic", "--threads", "1"]
                   + (["--shared-process"] if shared else ["--min-timed-seconds", "0"]))
    finally:  # the bench sets both for its own process
        torch.set_num_threads(threads)
        lightning_log.setLevel(level)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("  stgnf")]
    assert len(lines) == 2 and "against stgnf; per pair" in lines[1]
    timed = [line.split("(")[1].split(")")[0].split() for line in lines]
    assert [len(t) for t in timed] == [2, 2] and all(float(v) > 0 for t in timed for v in t)
    # a fresh process per timed epoch, the order turned each round so a linear drift cancels
    expected = [] if shared else ["stgnf", "stgnf+trajectory", "stgnf+trajectory", "stgnf"]
    assert [a.removeprefix("--child-epoch=") for c in children for a in c if a.startswith("--child-epoch=")] == expected
    assert ("in one process" in out) == shared


@pytest.mark.parametrize("args, message", [
    (["--shared-process"], "bench: --shared-process applies to --epoch-pairs only"),
    (["--min-timed-seconds", "5"], "bench: --min-timed-seconds applies to --epoch-pairs only"),
    (["--epoch-pairs", "1", "--shared-process", "--min-timed-seconds", "5"], "bench: --min-timed-seconds applies to fresh processes, not --shared-process"),
    (["--epoch-pairs", "1", "--step-pairs", "5"], "bench: --step-pairs and --epoch-pairs are two measurements: give one"),
])
def test_epoch_pairs_options_elsewhere_are_refused(args, message, capsys, monkeypatch, tmp_path):
    from vadflow import bench

    monkeypatch.setenv("VADFLOW_DATA", str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        bench.main([*args, "--dataset", "synthetic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and err == [message]


@pytest.mark.parametrize("args, named", [(["--methods", "stgnf", "nope+trajectory"], "'nope+trajectory'"),
                                         (["--dataset", "hr_avenu"], "'hr_avenu'")])
def test_bench_refuses_an_unknown_method_or_dataset_in_one_line(args, named, capsys, monkeypatch, tmp_path):
    from vadflow import bench

    monkeypatch.setenv("VADFLOW_DATA", str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        bench.main(["--epoch-pairs", "1", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and named in err[0] and err[0].startswith("bench: unknown")


def test_step_pairs_time_each_batch_with_and_without_the_component(capsys, monkeypatch, tmp_path):
    """``vadflow.bench --step-pairs``: every batch stepped once by the pose model alone and once with
    its component; a method without a wrapped component is one line, exit 2."""
    from vadflow import bench

    monkeypatch.setenv("VADFLOW_DATA", str(tmp_path))
    monkeypatch.setenv("VADFLOW_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    try:
        ms = bench.step_pairs("synthetic", 1, "stgnf+trajectory", 3)
        assert list(ms) == ["pose model alone", "with the component"] and [len(v) for v in ms.values()] == [3, 3]
        assert all(t > 0 for v in ms.values() for t in v)
        capsys.readouterr()  # what the measurement printed or logged
        for methods in (["stgnf"], ["stgnf+trajectory", "stgnf+frame"]):  # no component; one with nothing of its own to train
            method = methods[-1]
            with pytest.raises(SystemExit) as stop:
                bench.main(["--step-pairs", "2", "--methods", *methods, "--dataset", "synthetic", "--threads", "1"])
            err = capsys.readouterr().err.strip().splitlines()
            assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("bench: --step-pairs needs") and f"{method!r}" in err[0]
    finally:
        torch.set_num_threads(threads)
