"""Config mistakes end a command in one line naming the key or option, exit 2, before any data is read."""
import sys
from pathlib import Path

import pytest

from vadflow.config_check import ConfigError, check_config

from .conftest import compose


def run_command(module, argv, monkeypatch, capsys, tmp_path):
    """A console command in this process (as its entry point runs it): exit code and stderr."""
    monkeypatch.setattr(sys, "argv", [module, *argv, f"hydra.run.dir={tmp_path / 'run'}", "logger=none"][: None if module != "vadflow-eval" else -1])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    import vadflow.evaluate
    import vadflow.prepare
    import vadflow.train

    entry = {"vadflow-train": vadflow.train.main, "vadflow-eval": vadflow.evaluate.main, "vadflow-prepare": vadflow.prepare.main}[module]
    with pytest.raises(SystemExit) as exit_info:
        entry()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("module, argv, message", [
    ("vadflow-train", ["dataset=no_such_dataset"], "unknown dataset 'no_such_dataset' (known: hr_avenue, hr_shanghaitech, poselift"),
    ("vadflow-prepare", ["dataset=no_such_dataset"], "unknown dataset 'no_such_dataset' (known: hr_avenue"),
    ("vadflow-train", ["method=nope"], "unknown method 'nope' (known: daflow, daflow_random, dsnf, gmfcvae"),
    ("vadflow-train", ["dataset.seg_lenn=16"], "config key dataset.seg_lenn does not exist (did you mean dataset.seg_len?)"),
    ("vadflow-train", ["+dataset.seg_lenn=16"], "config key dataset.seg_lenn is not an option of the dataset (did you mean dataset.seg_len?)"),
    ("vadflow-train", ["dataset.missing_joints=impue"], "dataset.missing_joints='impue' is not one of impute, zeros"),
    ("vadflow-train", ["dataset.track_ends=yes"], "dataset.track_ends must be true or false, got 'yes'"),
    ("vadflow-train", ["dataset.flip=1"], "dataset.flip must be true or false, got 1"),
    ("vadflow-train", ["trajectory=flow", "trajectory.normalisation_jacobian=no"], "trajectory.normalisation_jacobian must be true or false, got 'no'"),
    ("vadflow-train", ["method.model.train_visible_only=on"], "method.model.train_visible_only must be true or false, got 'on'"),
    ("vadflow-train", ["method=daflow", "method.model.train_visible_only=on"], "method.model.train_visible_only must be true or false, got 'on'"),
    ("vadflow-train", ["trajectory=flow", "trajectory.combine=bogus"], "trajectory.combine='bogus' is not one of max, standardised, likelihood"),
    ("vadflow-train", ["trajectory=flow", "trajectory.statistics=held_out"], "trajectory.statistics=held_out needs normal training clips held out"),
    ("vadflow-train", ["trajectory=flow", "trajectory.statistics=test"], "trajectory.statistics='test' is not one of training, held_out"),
    ("vadflow-train", ["trajectory=stream"], "trajectory=stream is GMFC-VAE's own global stream; method stgnf takes trajectory=flow"),
    ("vadflow-train", ["method=dsnf", "+method.model.frame_attention=true"], "config key method.model.frame_attention is not an option of PoseFlow"),
    ("vadflow-train", ["loss=awam", "+loss.reducer.tauu=2"], "config key loss.reducer.tauu is not an option of AWAMReducer (did you mean loss.reducer.tau?)"),
    ("vadflow-train", ["dataset.seg_len=["], "cannot read the command-line overrides"),
    ("vadflow-eval", [], "ckpt_path is required: pass ckpt_path=..."),
])
def test_config_mistakes_are_one_line_exit_2(module, argv, message, monkeypatch, capsys, tmp_path):
    code, err = run_command(module, argv, monkeypatch, capsys, tmp_path)
    assert code == 2
    assert err.startswith("vadflow: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("overrides, message", [
    (["+dataset.synthetic.n_train_clip=3"], "dataset.synthetic.n_train_clip is not an option of the synthetic generator (did you mean dataset.synthetic.n_train_clips"),
    (["dataset.protocols=[mocodad,foo]"], "dataset.protocols='foo' is not one of"),
    (["dataset.short_tracks=reflekt"], "dataset.short_tracks='reflekt' is not one of skip, reflect, edge"),
    (["dataset.selection=heldout"], "dataset.selection='heldout' is not one of null, injected"),
    (["dataset.selection=injected"], "dataset.selection=injected scores normal clips held out of training: set dataset.val_fraction"),
    (["trajectory=flow", "+trajectory.hiden=3"], "trajectory.hiden is not an option of TrajectoryFlow (did you mean trajectory.hidden?)"),
    (["trajectory=flow", "trajectory.features=boxes"], "trajectory.features='boxes' is not one of frames, summary"),
    (["trajectory=frame", "+trajectory.combine=max"], "trajectory.combine is not an option of FrameWindows"),
    (["trajectory=frame", "trajectory.reference=scene"], "trajectory.reference='scene' is not one of camera, person"),
    (["method=msgflow", "+method.model.Kk=3"], "method.model.Kk is not an option of PoseFlow (did you mean method.model.K?)"),
])
def test_unusable_keys_and_values_are_refused(overrides, message):
    with pytest.raises(ConfigError) as err:
        check_config(compose("train", overrides + ["paths.output_dir=."]))
    assert message in str(err.value)


@pytest.mark.parametrize("overrides", [
    ["+dataset.synthetic.n_train_clips=3"],  # a generator option the YAML leaves at its default
    ["method=daflow", "backbone.frame_attention=false"],
    ["experiment=dsnf/hr_shanghaitech"],
    ["method=gmfcvae", "loss=gmm_energy", "trajectory=flow"],
    ["method=gmfcvae", "trajectory=frame"],
    ["method=msgflow", "trajectory=frame", "+trajectory.n_cameras=16"],
])
def test_usable_options_pass(overrides):
    check_config(compose("train", overrides + ["paths.output_dir=."]))


def test_an_unwritable_run_directory_fails_before_training(tmp_path, monkeypatch, capsys):
    import errno

    import vadflow.runs
    import vadflow.train
    from vadflow.runs import check_writable

    def full_disk(path, *args, **kwargs):  # a full disk, simulated for the probe only
        if Path(path).name == ".write_probe":
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, *args, **kwargs)

    monkeypatch.setattr(vadflow.runs, "open", full_disk, raising=False)
    started = []
    monkeypatch.setattr(vadflow.train, "PoseDataModule", lambda *a, **k: started.append(1))
    code, err = run_command("vadflow-train", [], monkeypatch, capsys, tmp_path)
    assert code == 2 and "cannot be written (No space left on device)" in err and str(tmp_path / "run") in err
    assert not started  # no data was read, nothing trained
    monkeypatch.undo()
    check_writable(tmp_path / "fine")  # a writable one passes and keeps no probe
    assert list((tmp_path / "fine").iterdir()) == []
