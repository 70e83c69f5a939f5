"""The β/d ablation grid (supplement Fig. 1) on the smoke config: runs, numbers, plot, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from handlatent.checkpoint import load_checkpoint
from handlatent.training import ablation

SMOKE = Path(__file__).resolve().parents[1] / "training" / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> Path:
    from handlatent.synth import cli as synth_cli

    path = tmp_path_factory.mktemp("abl") / "test"
    assert synth_cli.main(["--out", str(path), "--count", "8", "--size", "64", "--seed", "5",
                           "--quiet"]) == 0
    return path


def test_grid_trains_evaluates_plots_and_reuses_runs(test_set, tmp_path, capsys):
    out = tmp_path / "grid"
    argv = ["--config", str(SMOKE), "--test", str(test_set), "--out", str(out),
            "--betas", "0.5", "4", "--dims", "8", "--set", f"data.train={test_set}",
            "--set", "data.val_count=2", "--set", "data.batch_size=3",
            "--json", str(tmp_path / "grid.json"), "--plot", str(tmp_path / "fig1.png")]
    assert ablation.main(argv) == 0
    points = json.loads((tmp_path / "grid.json").read_text())["points"]
    assert [(p["beta"], p["d"]) for p in points] == [(0.5, 8), (4.0, 8)]
    for p in points:
        assert p["image_mse"] > 0 and p["kl"] >= 0
        assert set(p["kl_parts"]) == {"z_y1", "z_y2", "z_u"}
        ckpt = load_checkpoint(Path(p["run"]) / "last.pt")
        sizes = [ckpt["model_config"][k] for k in ("z_y1", "z_y2", "z_u")]
        assert sizes == [2, 2, 4]
        assert ckpt["extra"]["config"]["loss"]["beta"] == p["beta"]
    with Image.open(tmp_path / "fig1.png") as im:
        assert im.format == "PNG" and im.size[0] > 500

    stamp = (out / "beta0.5-d8" / "last.pt").stat().st_mtime_ns
    assert ablation.main(argv) == 0  # finished runs are evaluated again, not retrained
    assert (out / "beta0.5-d8" / "last.pt").stat().st_mtime_ns == stamp


def test_a_signal_stops_the_whole_grid(test_set, tmp_path, monkeypatch, capsys):
    """SIGTERM to a grid run stops that run (last.pt saved) and the grid with it, exit 130."""
    from handlatent.training import train as train_module

    real_train = train_module.train

    def interrupted(cfg, out, **kw):
        return real_train(cfg, out, stop_after=1, **kw) | {"stopped_by": "SIGTERM"}

    monkeypatch.setattr(train_module, "train", interrupted)
    argv = ["--config", str(SMOKE), "--test", str(test_set), "--out", str(tmp_path / "g"),
            "--betas", "1", "2", "--dims", "8", "--set", f"data.train={test_set}",
            "--set", "data.val_count=2", "--set", "data.batch_size=3"]
    assert ablation.main(argv) == 130
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert (tmp_path / "g" / "beta1-d8" / "last.pt").is_file()
    assert not (tmp_path / "g" / "beta2-d8").exists()


def test_odd_d_and_bad_config_are_one_line_errors(test_set, tmp_path, capsys):
    base = ["--test", str(test_set), "--out", str(tmp_path / "g"), "--betas", "1"]
    assert ablation.main(["--config", str(SMOKE), *base, "--dims", "6"]) == 2
    assert "d must be a multiple of 4" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert ablation.main(["--config", str(bad), *base, "--dims", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err
