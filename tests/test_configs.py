"""Every config composes, and instantiates what it names."""
from pathlib import Path

import hydra
import pytest

from vadflow.config import CONF_DIR, ROOT
from vadflow.config_check import check_config

from .conftest import compose

CONF = Path(CONF_DIR)
DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))
METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
LOSSES = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (CONF / "logger").glob("*.yaml"))
VARIANT_OF = {"synthetic_global": "synthetic"}  # dataset configs that read another dataset with other settings
LOSSES_OF = {"msgflow": ("nll", "awam", "vq"), "gmfcvae": ("nll", "awam", "gmm_energy")}  # the rest: nll, awam
EXPERIMENTS = sorted(str(p.relative_to(CONF / "experiment").with_suffix("")) for p in (CONF / "experiment").rglob("*.yaml"))


def test_groups_are_not_empty():
    assert {"synthetic", "hr_shanghaitech", "hr_avenue", "poselift", "shanghaitech_sample"} <= set(DATASETS)
    assert "stgnf" in METHODS and "nll" in LOSSES and EXPERIMENTS


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("loss", LOSSES)
def test_train_config_composes(dataset, method, loss, tmp_path):
    from vadflow.data.types import ConfigError
    from vadflow.build import build_method, method_config

    cfg = compose("train", [f"dataset={dataset}", f"method={method}", f"loss={loss}", f"paths.output_dir={tmp_path}"])
    assert cfg.dataset.name == VARIANT_OF.get(dataset, dataset) and cfg.method.name == method
    check_config(cfg)  # every key of every shipped config is read by something
    if loss not in LOSSES_OF.get(method, ("nll", "awam")):  # weights for terms the method never produces
        with pytest.raises(ConfigError, match=f"produces no '.*' term"):
            build_method(method_config(cfg), hydra.utils.instantiate(cfg.loss))
        return
    model = build_method(method_config(cfg), hydra.utils.instantiate(cfg.loss))
    assert set(model.objective.weights) <= model.loss_terms()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 0 if method.endswith("_baseline") else n_params > 0  # baselines learn nothing
    assert len(cfg.dataset.frame_size) == 2 and cfg.dataset.protocols


@pytest.mark.parametrize("method", [m for m in METHODS if not m.endswith("_baseline")])
def test_every_method_composes_with_the_trajectory_component(method, tmp_path):
    from vadflow.methods.trajectory_aware import TrajectoryAware
    from vadflow.methods import needs_trajectory
    from vadflow.build import TRAJECTORY_TARGET, build_method, method_config

    cfg = compose("train", [f"method={method}", "trajectory=flow", f"paths.output_dir={tmp_path}"])
    method_cfg = method_config(cfg)
    assert method_cfg["model"]["_target_"] == TRAJECTORY_TARGET and method_cfg["model"]["pose"]["_target_"] == cfg.method.model._target_
    model = build_method(method_cfg, hydra.utils.instantiate(cfg.loss))
    assert isinstance(model, TrajectoryAware) and model.combine == "max" and needs_trajectory(model)
    assert type(model.objective).__name__ == cfg.loss._target_.rsplit(".", 1)[1]  # the loss reaches the pose model
    plain_cfg = compose("train", [f"method={method}", f"paths.output_dir={tmp_path}"])
    assert not needs_trajectory(build_method(method_config(plain_cfg), hydra.utils.instantiate(plain_cfg.loss)))


@pytest.mark.parametrize("method", [m for m in METHODS if not m.endswith("_baseline")])
def test_every_method_composes_in_frame_coordinates(method, tmp_path):
    from vadflow.methods.frame_windows import FrameWindows
    from vadflow.methods import needs_trajectory
    from vadflow.build import FRAME_TARGET, build_method, method_config, trajectory_kind

    cfg = compose("train", [f"method={method}", "trajectory=frame", f"paths.output_dir={tmp_path}"])
    check_config(cfg)
    method_cfg = method_config(cfg)
    assert method_cfg["model"]["_target_"] == FRAME_TARGET and method_cfg["model"]["pose"]["_target_"] == cfg.method.model._target_
    assert trajectory_kind(method_cfg) == "frame"
    model = build_method(method_cfg, hydra.utils.instantiate(cfg.loss))
    assert isinstance(model, FrameWindows) and needs_trajectory(model)
    assert type(model.objective).__name__ == cfg.loss._target_.rsplit(".", 1)[1]  # the loss reaches the pose model


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose(experiment, tmp_path):
    cfg = compose("train", [f"experiment={experiment}", f"paths.output_dir={tmp_path}"])
    expected = "synthetic" if experiment == "quickstart" else experiment
    assert cfg.dataset.name in expected or cfg.dataset.name.replace("hr_", "") in expected


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("logger", LOGGERS)
def test_trainer_and_logger_configs_compose(trainer, logger, tmp_path):
    cfg = compose("train", [f"trainer={trainer}", f"logger={logger}", f"paths.output_dir={tmp_path}"])
    assert cfg.trainer._target_ == "lightning.Trainer"
    for c in (cfg.logger or {}).values():
        hydra.utils.instantiate(c)


@pytest.mark.parametrize("name", ["eval", "prepare"])
def test_other_entry_points_compose(name, tmp_path):
    cfg = compose(name, ["dataset=hr_avenue", f"paths.output_dir={tmp_path}"] + (["ckpt_path=x"] if name == "eval" else []))
    assert cfg.dataset.name == "hr_avenue"


def test_official_quirks_are_off_by_default_and_on_for_the_fixture():
    assert not compose("train", []).dataset.official_quirks
    assert compose("train", ["dataset=shanghaitech_sample"]).dataset.official_quirks
    assert compose("train", ["experiment=stgnf/official_hr_shanghaitech"]).dataset.missing_joints == "zeros"


@pytest.mark.parametrize("method", ["stgnf", "daflow", "dsnf"])
def test_flows_score_detected_joints_unless_the_official_behaviour_is_asked_for(method):
    assert compose("train", [f"method={method}"]).method.model.score_visible_only is True
    assert compose("train", [f"method={method}", "dataset.missing_joints=zeros"]).method.model.score_visible_only is False
    assert compose("train", ["experiment=stgnf/official_hr_shanghaitech"]).method.model.score_visible_only is False


REPRODUCE_SPECS = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("spec_file", REPRODUCE_SPECS, ids=[p.stem for p in REPRODUCE_SPECS])
def test_every_reproduce_spec_cell_composes_and_passes_the_config_check(spec_file, tmp_path):
    """A spec's cells (first seed, every method, dataset and variant) are configs the code can use:
    a typo in a spec fails here, not an hour into a grid."""
    from vadflow.reproduce import cell_overrides
    from vadflow.specs import load_spec, spec_cells

    spec = load_spec(spec_file)
    cells = spec_cells(spec, seeds=spec["seeds"][:1])
    assert cells, spec_file.name
    for method, dataset, variant, seed, extra in cells:
        overrides = cell_overrides(method, dataset, seed, extra)
        cfg = compose("train", overrides + [f"paths.output_dir={tmp_path}"])
        check_config(cfg)
        assert cfg.method.name == method and cfg.seed == seed, (spec_file.name, variant)
