"""A run killed mid-training and resumed ends with the same weights and AUC as one that was not."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vadflow.resume import resume_checkpoint
from vadflow.data.types import DataError

EPOCHS = 4


def _train_command(run_dir, cache, *extra):
    return [sys.executable, "-m", "vadflow.train", "dataset=synthetic_global", "trajectory=flow", "seed=3", f"trainer.max_epochs={EPOCHS}",
            "+dataset.synthetic.n_train_clips=8", "+dataset.synthetic.n_test_clips=2", "+dataset.synthetic.clip_len=200",
            "logger=none", "calibrate=false", "threads=1", "+trainer.enable_progress_bar=false", f"paths.cache_dir={cache}",
            f"hydra.run.dir={run_dir}", *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_sigterm_during_training_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """Killed in its second epoch (SIGTERM as soon as the first epoch's checkpoint exists), resumed."""
    cache = tmp_path / "cache"
    whole, killed, resumed = tmp_path / "whole", tmp_path / "killed", tmp_path / "resumed"
    subprocess.run(_train_command(whole, cache), check=True, capture_output=True, env=_env(), timeout=600)
    proc = subprocess.Popen(_train_command(killed, cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    # the first epoch's checkpoint is written: the run is in its second epoch of four
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143 and not (killed / "metrics.json").exists(), "the run ended before it was interrupted"
    assert f"interrupted by SIGTERM during epoch" in err and f"continue with resume={killed}" in err
    epoch_at_kill = torch.load(last, weights_only=True)["epoch"]
    assert epoch_at_kill < EPOCHS - 1
    subprocess.run(_train_command(resumed, cache, f"resume={killed}"), check=True, capture_output=True, env=_env(), timeout=600)
    a = torch.load(whole / "model.ckpt", weights_only=True)
    b = torch.load(resumed / "model.ckpt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (whole, resumed))
    assert ma["epochs"] == mb["epochs"] == EPOCHS
    assert {p: r["auc"] for p, r in ma["protocols"].items()} == {p: r["auc"] for p, r in mb["protocols"].items()}

    # the same checkpoint as the code wrote it before the trajectory flow's weights were packed
    # (one tensor per layer, in the weights and in Adamax's state) resumes to the same weights
    from vadflow.checkpoint import load_method, read_checkpoint

    model, _ = load_method(read_checkpoint(whole / "model.ckpt"))
    layered = tmp_path / "layered"
    (layered / "checkpoints").mkdir(parents=True)
    torch.save(_as_layers(torch.load(last, weights_only=False), model), layered / "checkpoints" / "last.ckpt")
    resumed_layered = tmp_path / "resumed_layered"
    subprocess.run(_train_command(resumed_layered, cache, f"resume={layered}"), check=True, capture_output=True, env=_env(), timeout=600)
    c = torch.load(resumed_layered / "model.ckpt", weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, c["state_dict"][key]), key

    # an optimiser state that does not belong to its weights: one line naming the file, exit 2
    foreign = torch.load(layered / "checkpoints" / "last.ckpt", weights_only=False)
    foreign["optimizer_states"][0]["param_groups"][0]["params"] = foreign["optimizer_states"][0]["param_groups"][0]["params"][:-5]
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    torch.save(foreign, broken / "checkpoints" / "last.ckpt")
    proc = subprocess.run(_train_command(tmp_path / "resumed_broken", cache, f"resume={broken}"), capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{broken / 'checkpoints' / 'last.ckpt'}: the saved optimiser state has" in proc.stderr.strip().splitlines()[-1]


def _as_layers(ckpt: dict, model) -> dict:
    """A Lightning checkpoint of ``AnomalyModule(model)`` with each packed flow's tensor split back
    into its layers' tensors, weights and optimiser state alike."""
    from vadflow.nn.flow import Flow

    flows = {f"method.{prefix}.packed": flow for prefix, flow in model.named_modules() if isinstance(flow, Flow) and flow.slots}
    assert flows, "the model has no packed flow"
    state = {}
    for key, value in ckpt["state_dict"].items():
        if key in flows:
            state.update({key.removesuffix("packed") + name: t.clone() for name, t in flows[key].layer_tensors(value).items()})
        else:
            state[key] = value
    names = ["method." + name for name, _ in model.named_parameters()]
    (opt,) = ckpt["optimizer_states"]
    old_states, new_states, index = opt["state"], {}, 0
    for i, name in enumerate(names):
        if name in flows:  # each per-element state cut once into the layers' pieces
            pieces = {k: list(flows[name].layer_tensors(v).values()) for k, v in old_states[i].items() if torch.is_tensor(v) and v.dim()}
            for part in range(len(flows[name].slots)):
                new_states[index + part] = {k: pieces[k][part].clone() if k in pieces else v for k, v in old_states[i].items()}
            index += len(flows[name].slots)
        else:
            new_states[index] = old_states[i]
            index += 1
    opt["state"], opt["param_groups"][0]["params"] = new_states, list(range(index))
    return {**ckpt, "state_dict": state}


def test_resume_from_a_folder_without_a_checkpoint_names_it(tmp_path):
    with pytest.raises(DataError, match="no such run directory"):
        resume_checkpoint(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="no checkpoints/last.ckpt"):
        resume_checkpoint(str(tmp_path))
    assert resume_checkpoint(None) is None


def test_resume_auto_takes_the_run_directorys_own_checkpoint_if_any(tmp_path):
    from vadflow.resume import last_checkpoint

    assert resume_checkpoint("auto", tmp_path) is None  # a first run starts afresh
    last_checkpoint(tmp_path).parent.mkdir(parents=True)
    last_checkpoint(tmp_path).write_bytes(b"")
    assert resume_checkpoint("auto", tmp_path) == str(last_checkpoint(tmp_path))  # a requeued one continues


@pytest.mark.parametrize("signum, code, what", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C (SIGINT)")])
def test_sigterm_and_ctrl_c_stop_training_with_their_own_exit_code(signum, code, what):
    from vadflow.resume import Interrupted, stop_on_signals

    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as stop:
        with stop_on_signals():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises before this ends
    assert stop.value.exit_code == code and stop.value.what == what
    assert signal.getsignal(signum) is before  # handlers restored


def test_the_slurm_launcher_requeues_preempted_and_timed_out_jobs():
    from hydra import compose, initialize_config_dir

    from vadflow.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher.max_num_timeout > 0  # submitit requeues into the same run directory ...
    assert "resume=auto" in (Path(CONF_DIR) / "hydra/launcher/slurm.yaml").read_text()  # ... where resume=auto continues
