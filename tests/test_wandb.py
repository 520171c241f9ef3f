"""W&B logging (offline): config, summary with the final metrics, images, one finished run per job."""
import pytest

from vadflow.config import wandb_offline
from vadflow.train import run_training

from .conftest import compose


def test_offline_by_default_online_when_logged_in(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_offline()
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password x\n")
    assert not wandb_offline()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline()


def test_training_logs_an_offline_run(tiny_overrides, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    from vadflow import train

    captured = {}
    finish = train.finish_wandb

    def spy(failed):  # read the live run just before the job closes it
        if wandb.run is not None:
            captured.update(summary={k: wandb.run.summary[k] for k in wandb.run.summary.keys()}, config=dict(wandb.run.config), failed=failed)
        finish(failed)

    monkeypatch.setattr(train, "finish_wandb", spy)
    overrides = [o for o in tiny_overrides if not o.startswith("logger=")] + ["logger=wandb", "tags=[test]"]
    record = run_training(compose("train", overrides))
    assert wandb.run is None  # finished after the job
    assert captured["failed"] is False
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1
    summary = captured["summary"]
    assert summary["auc"] == pytest.approx(record["auc"]) and summary["dataset"] == "synthetic" and summary["seed"] == 29
    assert summary["stgnf/auc_raw"] == pytest.approx(record["protocols"]["stgnf"]["auc_raw"])
    assert captured["config"]["method"]["name"] == "stgnf" and captured["config"]["dataset"]["name"] == "synthetic"
    media = tmp_path / "run" / "wandb"
    assert list(media.rglob("roc_*.png")) and list(media.rglob("score_over_time_*.png"))
    assert (tmp_path / "run" / "figures" / "roc_stgnf.png").is_file()
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()  # the CSV log stays


def test_failed_job_still_finishes_its_run(tiny_overrides, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import wandb

    from vadflow.data.types import DataError

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.init(project="vadflow-test", dir=str(tmp_path))  # a run left open by a crashing job
    overrides = [o for o in tiny_overrides if not o.startswith("logger=")] + ["logger=wandb", "dataset=hr_avenue", f"paths.data_root={tmp_path / 'none'}"]
    with pytest.raises(DataError):
        run_training(compose("train", overrides))
    assert wandb.run is None
