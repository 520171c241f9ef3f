"""Hydra multirun with the basic launcher: unattended, one run directory (and metrics.json) per job."""
import json
import subprocess
import sys

import pytest


def test_multirun_seeds_get_their_own_run_directories(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "vadflow.train", "-m", "seed=1,2", "logger=none", "trainer.max_epochs=1",
        "+trainer.enable_progress_bar=false", "threads=1", f"paths.cache_dir={tmp_path / 'cache'}",
        "+dataset.synthetic.n_train_clips=3", "+dataset.synthetic.n_test_clips=3", "+dataset.synthetic.clip_len=150",
        f"hydra.sweep.dir={sweep}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = sorted(sweep.glob("*_synthetic_stgnf_seed*"))
    assert [r.name for r in runs] == ["0_synthetic_stgnf_seed1", "1_synthetic_stgnf_seed2"]
    seeds = [json.loads((r / "metrics.json").read_text())["seed"] for r in runs]
    assert seeds == [1, 2] and all((r / "model.ckpt").is_file() for r in runs)
    assert out.stdout.count("micro AUC") == 2 * 3  # three protocols per job (synthetic: stgnf, mpedrnn, mocodad), each line names its protocol
    # the sweep ends with mean ± std over its seeds, per protocol
    rows = {r["protocol"]: r for r in json.loads((sweep / "summary.json").read_text())}
    assert set(rows) == {"stgnf", "mpedrnn", "mocodad"} and rows["stgnf"]["headline"]
    aucs = [json.loads((r / "metrics.json").read_text())["protocols"]["mpedrnn"]["auc"] for r in runs]
    assert rows["mpedrnn"]["seeds"] == [1, 2] and rows["mpedrnn"]["variant"] == "-"
    assert rows["mpedrnn"]["auc_mean"] == pytest.approx(sum(aucs) / 2) and rows["mpedrnn"]["auc_std"] == pytest.approx(abs(aucs[0] - aucs[1]) / 2)
    assert "| stgnf | synthetic | - | stgnf* | 1,2 |" in (sweep / "summary.md").read_text()


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "vadflow.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2",
        "logger=none", "trainer.max_epochs=1", "+trainer.enable_progress_bar=false", "threads=1",
        f"paths.cache_dir={tmp_path / 'cache'}", "+dataset.synthetic.n_train_clips=3", "+dataset.synthetic.n_test_clips=3",
        "+dataset.synthetic.clip_len=150", f"hydra.sweep.dir={sweep}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = sorted(sweep.glob("*_synthetic_stgnf_seed*"))
    assert len(runs) == 2 and all((r / "metrics.json").is_file() for r in runs)
    # same seed, same AUC whichever launcher ran it
    assert json.loads((runs[0] / "metrics.json").read_text())["seed"] == 1


def test_submitit_local_launcher(tmp_path):
    """The submitit launcher (SLURM on clusters) exercised locally with submitit_local."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "vadflow.train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
        "seed=1", "logger=none", "trainer.max_epochs=1", "+trainer.enable_progress_bar=false", "threads=1",
        f"paths.cache_dir={tmp_path / 'cache'}", "+dataset.synthetic.n_train_clips=3", "+dataset.synthetic.n_test_clips=3",
        "+dataset.synthetic.clip_len=150", f"hydra.sweep.dir={sweep}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = list(sweep.glob("*_synthetic_stgnf_seed1"))
    assert len(runs) == 1 and json.loads((runs[0] / "metrics.json").read_text())["seed"] == 1


def test_slurm_launcher_config_composes():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vadflow.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=["hydra/launcher=slurm", "trainer=ddp"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 1
