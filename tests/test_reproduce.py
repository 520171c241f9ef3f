"""make reproduce-table: runs missing cells only, reruns stale ones, reports crashes and goes on."""
import json

import pytest
import yaml

from vadflow import reproduce


def test_reproduce_table_runs_missing_cells_only(tmp_path, monkeypatch):
    spec = {
        "methods": ["stgnf"], "datasets": ["synthetic", "hr_avenue"], "seeds": [1],
        "overrides": ["logger=none", "trainer.max_epochs=1", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_root={tmp_path / 'no-data'}",
                      "+dataset.synthetic.n_train_clips=3", "+dataset.synthetic.n_test_clips=3", "+dataset.synthetic.clip_len=150"],
        "jobs": 2, "results_dir": str(tmp_path / "runs"),
    }
    spec_file = tmp_path / "table.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "results"
    # hr_avenue has no data here: that cell crashes, the synthetic cell still completes
    assert reproduce.main(["--spec", str(spec_file), "--out", str(out)]) == 1
    cell = tmp_path / "runs" / "stgnf" / "synthetic" / "seed1"
    metrics = json.loads((cell / "metrics.json").read_text())
    table = (out / "table.md").read_text()
    assert metrics["table_key"] and table.count("| stgnf | synthetic |") == len(metrics["protocols"]) == 3  # a row per protocol
    assert "| STG-NF* |" in table and "| MoCoDAD |" in table
    assert (out / "table.png").is_file() and (out / "table.csv").is_file()
    from PIL import Image

    assert Image.open(out / "roc.png").size[0] >= 300 and Image.open(out / "timelines.png").size[0] >= 800  # readable at README width
    wide = (out / "table_wide.md").read_text().splitlines()  # the README's layout: a row per method
    auc = 100 * metrics["auc"]
    assert f"| synthetic {metrics['protocol']}* |" in wide[0] and f"| {auc:.1f} ± 0.0 (1) |" in wide[2] and wide[2].startswith("| stgnf |")

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    reproduce.main(["--spec", str(spec_file), "--out", str(out), "--summarise-only", "--wandb"])
    logged = {p.name.split("_")[0] for p in out.glob("wandb/offline-run-*/files/media/images/figures/*.png")}
    assert logged == {"table", "roc", "timelines"}  # the same figures, as W&B images

    calls = []
    monkeypatch.setattr(reproduce, "run_cell", lambda *a: calls.append(a) or (False, "x"))
    reproduce.main(["--spec", str(spec_file), "--out", str(out)])
    assert len(calls) == 1  # only the crashed cell is run again; the fresh one is skipped

    # a protocol change re-scores the saved window scores and trains nothing
    spec["overrides"] += ["dataset.protocols=[mpedrnn,stgnf]", "dataset.smoothing_sigmas=[]"]
    spec_file.write_text(yaml.safe_dump(spec))
    calls.clear()
    reproduce.main(["--spec", str(spec_file), "--out", str(out)])
    assert len(calls) == 1
    rows = [r for r in (out / "table.md").read_text().splitlines() if r.startswith("| stgnf | synthetic |")]
    assert len(rows) == 2 and "| MPED-RNN* |" in rows[0]
    unsmoothed = 100 * metrics["protocols"]["stgnf"]["auc_raw"]  # stgnf without smoothing = its unsmoothed AUC
    assert f"| STG-NF | 1 | {unsmoothed:.1f} ± 0.0 |" in rows[1]

    spec["overrides"].append("method.optim.lr=0.001")  # a changed config makes every cell stale
    spec_file.write_text(yaml.safe_dump(spec))
    calls.clear()
    reproduce.main(["--spec", str(spec_file), "--out", str(out)])
    assert len(calls) == 2


def test_a_variant_given_per_dataset_runs_on_the_datasets_it_names_with_their_overrides():
    from vadflow.specs import Cell, check_spec, spec_cells

    spec = {"methods": ["stgnf", "daflow"], "datasets": ["hr_avenue", "poselift"], "seeds": [1, 2], "overrides": ["logger=none"],
            "variants": {"": [], "chosen": {"poselift": ["trajectory=flow", "dataset.seg_len=12"]}}}
    check_spec(spec)
    cells = spec_cells(spec, seeds=[2])
    assert cells == [
        Cell("stgnf", "hr_avenue", "", 2, ["logger=none"]), Cell("daflow", "hr_avenue", "", 2, ["logger=none"]),
        Cell("stgnf", "poselift", "", 2, ["logger=none"]), Cell("daflow", "poselift", "", 2, ["logger=none"]),
        Cell("stgnf", "poselift", "chosen", 2, ["logger=none", "trajectory=flow", "dataset.seg_len=12"]),
        Cell("daflow", "poselift", "chosen", 2, ["logger=none", "trajectory=flow", "dataset.seg_len=12"]),
    ]
    assert len(spec_cells(spec)) == 12  # both seeds


BAD_SPECS = {
    "a misspelt key": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [1]\nvariant: {a: []}\n", "unknown key 'variant'"),
    "no seeds": ("methods: [stgnf]\ndatasets: [hr_avenue]\n", "'seeds' is missing"),
    "a stranger dataset": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [1]\nvariants: {a: {poselift: []}}\n", "names dataset 'poselift'"),
    "overrides as text": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [1]\noverrides: logger=none\n", "'overrides' must be a list"),
    "a variant as text": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [1]\nvariants: {a: {hr_avenue: x=1}}\n", "overrides must be a list"),
    "a variant for no dataset": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [1]\nvariants: {a: {}}\n", "names no dataset"),
    "a seed as text": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [one]\n", "'seeds' must be whole numbers"),
    "no jobs": ("methods: [stgnf]\ndatasets: [hr_avenue]\nseeds: [1]\njobs: 0\n", "'jobs' must be a whole number"),
    "not YAML": ("methods: [stgnf\n", "not valid YAML"),
    "not a mapping": ("- stgnf\n", "a spec is a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_one_line_naming_the_file_before_anything_runs(case, tmp_path, monkeypatch, capsys):
    from vadflow import selection

    text, message = BAD_SPECS[case]
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(text)
    calls = []
    monkeypatch.setattr(reproduce, "run_cell", lambda *a: calls.append(a) or (True, ""))
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--spec", str(spec_file), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and not calls
    assert len(err.splitlines()) == 1 and str(spec_file) in err and message in err, err
    assert selection.main(["--spec", str(spec_file), "--out", str(tmp_path / "out")]) == 2  # the selection rule reads specs the same way
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(spec_file) in err and message in err, err


def test_summarising_without_the_data_root_is_one_line(tmp_path, monkeypatch, capsys):
    from vadflow.data.types import DataError

    spec_file = tmp_path / "table.yaml"
    spec_file.write_text(yaml.safe_dump({"methods": ["stgnf"], "datasets": ["hr_avenue"], "seeds": [1], "results_dir": str(tmp_path / "runs")}))

    def no_root(cell):
        raise DataError(f"data root {tmp_path / 'data'} does not exist (set paths.data_root=... or VADFLOW_DATA)")

    monkeypatch.setattr(reproduce, "rescored_metrics", no_root)
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--spec", str(spec_file), "--out", str(tmp_path / "out"), "--summarise-only"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.splitlines() == [f"vadflow: error: data root {tmp_path / 'data'} does not exist (set paths.data_root=... or VADFLOW_DATA)"]


def test_selection_without_the_data_root_is_one_line(tmp_path, monkeypatch, capsys):
    """A run the selection rule must re-score on each family's events, its data root gone."""
    from vadflow import selection
    from vadflow.data.types import DataError

    spec_file = tmp_path / "selection.yaml"
    spec_file.write_text(yaml.safe_dump({"methods": ["stgnf"], "datasets": ["hr_avenue"], "seeds": [1], "variants": {"none": [], "flow": []},
                                         "results_dir": str(tmp_path / "runs")}))
    (tmp_path / "runs/stgnf/hr_avenue/none/seed1").mkdir(parents=True)
    (tmp_path / "runs/stgnf/hr_avenue/none/seed1/metrics.json").write_text("{}")

    def no_root(run, threads):
        raise DataError(f"data root {tmp_path / 'data'} does not exist (set paths.data_root=... or VADFLOW_DATA)")

    monkeypatch.setattr(selection, "family_aucs", no_root)
    with pytest.raises(SystemExit) as exit_info:
        selection.main(["--spec", str(spec_file), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.splitlines() == [f"vadflow: error: data root {tmp_path / 'data'} does not exist (set paths.data_root=... or VADFLOW_DATA)"]
