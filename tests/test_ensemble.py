"""python -m vadflow.ensemble: members standardised on their own training windows, averaged, scored once."""
import json
import shutil

import numpy as np
import pytest
import torch

from vadflow.data.types import DataError
from vadflow.ensemble import common_dataset, main, mean_of_members, parse_member, row_names, seeds_of
from vadflow.train import run_training

from .conftest import compose


def test_the_mean_of_standardised_scores_is_the_hand_computed_one(tmp_path):
    # A: training scores 0, 2 (mean 1, std 1); B: 10, 30 (mean 20, std 10)
    a = {"index": np.array([0, 1, 2]), "score": np.array([1.0, 2.0, 3.0]), "train_score": np.array([0.0, 2.0])}
    b = {"index": np.array([0, 1, 2]), "score": np.array([10.0, 30.0, 20.0]), "train_score": np.array([10.0, 30.0])}
    out = mean_of_members([a, b], [tmp_path / "a", tmp_path / "b"])
    np.testing.assert_allclose(out["score"], [(0 - 1) / 2, (1 + 1) / 2, (2 + 0) / 2])
    np.testing.assert_allclose(out["train_score"], [-1.0, 1.0])  # both members' training scores standardise to -1, 1
    np.testing.assert_array_equal(out["index"], [0, 1, 2])


def test_members_that_score_other_windows_or_have_no_spread_are_refused(tmp_path):
    a = {"index": np.array([0, 1, 2]), "score": np.zeros(3), "train_score": np.array([0.0, 2.0])}
    other_windows = {**a, "index": np.array([0, 2, 1])}
    with pytest.raises(DataError, match="score different windows"):
        mean_of_members([a, other_windows], [tmp_path / "a", tmp_path / "b"])
    flat = {**a, "train_score": np.array([1.0, 1.0])}
    with pytest.raises(DataError, match="no spread"):
        mean_of_members([a, flat], [tmp_path / "a", tmp_path / "b"])


def test_dataset_settings_must_agree_except_training_only_ones(tmp_path):
    base = {"name": "poselift", "seg_len": 12, "flip": True, "track_ends": True}
    assert common_dataset([base, {**base, "flip": False}], [tmp_path / "a", tmp_path / "b"]) == base
    with pytest.raises(DataError, match=r"different dataset settings \(seg_len, track_ends\)"):
        common_dataset([base, {**base, "seg_len": 24, "track_ends": False}], [tmp_path / "a", tmp_path / "b"])


def test_a_member_may_take_other_seeds_of_its_cell(tmp_path):
    cell = tmp_path / "runs" / "stgnf" / "poselift" / "max"
    for seed in range(1, 7):
        (cell / f"seed{seed}").mkdir(parents=True)
    same, later = parse_member(str(cell)), parse_member(f"{cell}@+3")
    assert later.run(2) == cell / "seed5" and later.name == "stgnf/max@+3" and same.name == "stgnf/max"
    assert seeds_of([same, later], None) == [1, 2, 3]  # seeds 4-6 have no seed 7-9 to pair with
    with pytest.raises(DataError, match="no run for seed 7"):
        seeds_of([same, later], [4])
    with pytest.raises(DataError, match="CELL or CELL@"):
        parse_member(f"{cell}@3")
    twin = parse_member(str(tmp_path / "other" / "stgnf" / "poselift" / "max"))
    assert row_names([same, twin]) == [str(cell), str(twin.cell), "ensemble"]  # one row each, never merged
    assert row_names([same, later]) == ["stgnf/max", "stgnf/max@+3", "ensemble"]


@pytest.fixture
def two_cells(tiny_overrides, tmp_path, monkeypatch):
    """One tiny synthetic run, copied into two reproduce cells (<results>/<method>/<dataset>/<variant>/seed1)."""
    monkeypatch.setenv("VADFLOW_CACHE", str(tmp_path / "cache"))
    run_training(compose("train", tiny_overrides))
    cells = [tmp_path / "results" / "stgnf" / "synthetic" / v for v in ("a", "b")]
    for cell in cells:
        shutil.copytree(tmp_path / "run", cell / "seed1")
    return cells


def test_a_run_joined_with_its_copy_scores_as_the_run_under_every_protocol(two_cells, capsys):
    """Standardising is a positive affine map and the copies agree, so under the protocols that only
    rank, smooth and average (stgnf, mpedrnn) no AUC may change beyond float rounding (averaging
    overlapping windows after the map can swap two frames whose scores agree to ~1e-15). MoCoDAD's
    person fusion adds the spread of log1p(score) over persons, which depends on the scale, so its
    AUC may move. The printed table names the dataset and the protocol."""
    assert main([str(c) for c in two_cells]) == 0
    out = capsys.readouterr().out
    assert "synthetic, protocol stgnf, seeds 1" in out and "| ensemble |" in out
    run = json.loads((two_cells[0] / "seed1" / "metrics.json").read_text())
    joined = two_cells[0].parent.parent.parent / "ensemble" / "synthetic" / "stgnf-a+stgnf-b" / "seed1"
    ens = json.loads((joined / "metrics.json").read_text())
    assert ens["members"] == [str(c / "seed1") for c in two_cells]
    assert set(ens["protocols"]) == set(run["protocols"])
    for protocol, result in run["protocols"].items():
        if protocol != "mocodad":
            assert ens["protocols"][protocol]["auc"] == pytest.approx(result["auc"], abs=1e-4), protocol
    assert ens["protocols"]["mocodad"]["score_offset"] == pytest.approx(np.quantile(np.load(joined / "window_scores.npz")["train_score"], 0.01))
    saved, own = np.load(joined / "window_scores.npz"), np.load(two_cells[0] / "seed1" / "window_scores.npz")
    mean, std = own["train_score"].mean(), own["train_score"].std()
    np.testing.assert_allclose(saved["score"], (own["score"] - mean) / std)


def test_members_trained_on_other_windows_give_one_line_and_exit_2(two_cells, capsys):
    ckpt_file = two_cells[1] / "seed1" / "model.ckpt"
    ckpt = torch.load(ckpt_file, weights_only=True)
    ckpt["dataset"]["seg_len"] = int(ckpt["dataset"]["seg_len"]) + 2
    torch.save(ckpt, ckpt_file)
    with pytest.raises(SystemExit) as stop:
        main([str(c) for c in two_cells])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert str(two_cells[1] / "seed1") in err and "(seg_len)" in err


def test_a_truncated_score_file_gives_one_line_naming_it(two_cells, capsys):
    scores = two_cells[1] / "seed1" / "window_scores.npz"
    scores.write_bytes(scores.read_bytes()[:100])
    with pytest.raises(SystemExit) as stop:
        main([str(c) for c in two_cells])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and str(scores) in err and "not a readable window-score file" in err


def test_a_nan_score_gives_one_line_naming_the_file(two_cells, capsys):
    scores = two_cells[1] / "seed1" / "window_scores.npz"
    saved = dict(np.load(scores))
    saved["score"] = saved["score"].copy()
    saved["score"][3] = np.nan
    np.savez(scores, **saved)
    with pytest.raises(SystemExit) as stop:
        main([str(c) for c in two_cells])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and str(scores) in err and "1 window scores are NaN or inf" in err
