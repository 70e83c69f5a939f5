"""handlatent-eval: the CLI end to end on a tiny model and dataset, and a known-answer test that
proves the evaluator's unit handling (bone units × GT scale, root-relative, GT handedness,
visibility) with an oracle model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from handlatent.checkpoint import save_checkpoint
from handlatent.metrics import PCK_THRESHOLDS_M, at_chance, evaluate_pose
from handlatent.model import ModelConfig, build_model
from handlatent.training import evaluate_cli
from handlatent.training.evaluate import (BETA_VAE_FULL, BETA_VAE_QUICK, EvalOptions, evaluate,
                                          format_results)
from handlatent.training.figures import FIGURES
from oracle_model import OracleModel

SIZE = 64
COUNT = 32
TINY = ModelConfig(image_size=SIZE, z_y1=6, z_y2=4, z_u=3, hidden=16, decoder_channels=4)
SMALL_DISENTANGLEMENT = ["--regression-samples", "24", "--beta-vae-pairs", "2",
                         "--beta-vae-train", "8", "--beta-vae-eval", "8"]


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from handlatent.synth import cli as synth_cli

    path = tmp_path_factory.mktemp("data") / "synth"
    assert synth_cli.main(["--out", str(path), "--count", str(COUNT), "--size", str(SIZE),
                           "--seed", "3", "--quiet"]) == 0
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, build_model(TINY).eval())
    return path


@pytest.fixture(scope="module")
def cli_run(synth_data, checkpoint, tmp_path_factory):
    """One full CLI run (JSON, plots, figures, disentanglement) shared by the checks below."""
    out = tmp_path_factory.mktemp("eval")
    argv = ["--checkpoint", str(checkpoint), "--data", str(synth_data), "--json",
            str(out / "eval.json"), "--plots", str(out / "plots"), "--figures", str(out / "figs"),
            "--batch-size", "12", "--device", "cpu", "--threads", "1", "--quiet",
            "--sample-count", "12", *SMALL_DISENTANGLEMENT]
    assert evaluate_cli.main(argv) == 0
    return out, json.loads((out / "eval.json").read_text())


def test_json_keys_shapes_and_ranges(cli_run, checkpoint, synth_data):
    _, r = cli_run
    for key in ("auc_20_50", "epe_mean_mm", "epe_median_mm", "pck", "viewpoint_error_deg",
                "image_mse", "kl", "disentanglement", "checkpoint", "data", "count"):
        assert key in r, key
    assert r["checkpoint"] == str(checkpoint) and r["data"] == str(synth_data)
    assert r["count"] == COUNT == r["labelled_count"]
    assert 0.0 <= r["auc_20_50"] <= 1.0 and 0.0 <= r["auc_0_50"] <= 1.0
    assert r["epe_mean_mm"] > 0 and r["epe_median_mm"] > 0
    assert 0.0 <= r["viewpoint_error_deg"] <= 180.0
    pck = np.array(r["pck"]["values"])
    assert np.allclose(r["pck"]["thresholds_mm"], PCK_THRESHOLDS_M * 1000)
    assert pck.shape == (20,) and np.all(np.diff(pck) >= 0) and 0 <= pck.min() and pck.max() <= 1
    assert 0.0 < r["image_mse"] <= 4.0  # [-1, 1] images: the squared error is at most 4
    # PSNR in [0, 1] units: the [-1, 1] MSE is 4 times the [0, 1] one
    assert r["image_psnr_db"] == pytest.approx(10 * np.log10(4 / r["image_mse"]))
    assert 0 < r["hand_psnr_db"] < 60 and 0 < r["sharpness"] and "image_quality_note" not in r


def test_kl_per_sub_latent_and_dimension(cli_run):
    kl = cli_run[1]["kl"]
    sizes = {"z_y1": TINY.z_y1, "z_y2": TINY.z_y2, "z_u": TINY.z_u}
    for name, size in sizes.items():
        assert len(kl["per_dim"][name]) == size
        assert all(v >= 0 for v in kl["per_dim"][name])
        assert kl[name] == pytest.approx(sum(kl["per_dim"][name]), rel=1e-9)
    assert kl["total"] == pytest.approx(sum(kl[n] for n in sizes), rel=1e-9)


def test_random_samples_are_scored_against_reconstructions(cli_run, synth_data, checkpoint,
                                                          tmp_path, capsys):
    samples = cli_run[1]["samples"]
    assert samples["count"] == 12 and samples["thumbnail_px"] == 8
    assert all(samples[k] >= 0 for k in ("fd_hands", "fd_prior", "fd_floor"))
    out = tmp_path / "eval.json"  # more samples than half the data: skipped, and said why
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(synth_data),
                              "--quiet", "--threads", "1", "--no-disentanglement",
                              "--sample-count", "17", "--json", str(out)]) == 0
    skipped = json.loads(out.read_text())["samples"]["skipped"]
    assert f"needs 2 x --sample-count = 34 evaluated images, got {COUNT}" in skipped
    assert f"use --sample-count {COUNT // 2} or more images" in skipped
    assert "random samples: skipped" in capsys.readouterr().out


def test_disentanglement_report(cli_run):
    dis = cli_run[1]["disentanglement"]
    t4 = dis["table4"]
    assert t4["samples"] == 24
    assert list(t4["sources"]) == ["z_y1~q(x)", "z_y1~q(y1)", "z_y2~q(x)", "z_y2~q(y2)",
                                   "z_cross~q(x)", "noise"]
    for row in t4["sources"].values():
        assert 0.0 <= row["y1"] <= 1.0 and row["y2"] >= 0.0
    assert set(t4["at_chance"]) == {"y1", "y2"}
    assert not {"noise", "z_y1~q(y1)"} & set(t4["at_chance"]["y1"])  # the labels' own encoding
    bv = dis["beta_vae"]  # synthetic data: the generator's six factor groups
    assert bv["factors"] == ["pose", "shape", "viewpoint", "skin", "light", "background"]
    assert 0.0 <= bv["score"] <= 1.0 and bv["score"] == bv["eval_accuracy"]
    assert (bv["pairs_per_point"], bv["n_train"], bv["n_eval"]) == (2, 8, 8)


def test_table4_says_which_regressions_are_at_chance_level(cli_run):
    table = {"z_y1~q(x)": {"y1": 0.739, "y2": 2.60}, "z_y1~q(y1)": {"y1": 0.990, "y2": 2.85},
             "z_y2~q(y2)": {"y1": 0.700, "y2": 0.01}, "noise": {"y1": 0.738, "y2": 2.851}}
    assert at_chance(table) == {"y1": ["z_y1~q(x)", "z_y2~q(y2)"], "y2": ["z_y1~q(y1)"]}
    results = json.loads(json.dumps(cli_run[1]))         # a whole report, Table 4 replaced
    results["disentanglement"]["table4"].update(sources=table, at_chance=at_chance(table))
    lines = {line.split()[0]: line for line in format_results(results).splitlines() if line}
    assert "0.739 ~" in lines["z_y1~q(x)"] and "0.990 ~" not in lines["z_y1~q(y1)"]
    assert "2.850 ~" in lines["z_y1~q(y1)"] and "~" not in lines["noise"]
    assert "~ chance level: no better than the noise row (within 1%)" in lines["~"]


def test_quick_beta_vae_sizes_by_default_and_the_supplements_with_full():
    def sizes(*extra):
        args = evaluate_cli.parse_args(["--checkpoint", "m.pt", "--data", "d", *extra])
        return args.beta_vae_pairs, args.beta_vae_train, args.beta_vae_eval

    assert sizes() == BETA_VAE_QUICK == (16, 100, 100)
    assert sizes("--full") == BETA_VAE_FULL == (32, 500, 500)       # supplement §E
    assert sizes("--full", "--beta-vae-pairs", "8") == (8, 500, 500)  # a given size wins
    assert sizes("--beta-vae-eval", "40") == (16, 100, 40)
    assert EvalOptions().beta_vae_pairs == 16                         # the library's default too

    def hands(pairs, train, held_out):     # rendered and encoded: the score's cost
        return 2 * pairs * (train + held_out)
    assert 6 * hands(*BETA_VAE_QUICK) <= hands(*BETA_VAE_FULL)


def test_one_progress_line_per_stage_when_stderr_is_not_a_terminal(synth_data, checkpoint,
                                                                   capsys):
    argv = ["--checkpoint", str(checkpoint), "--data", str(synth_data), "--threads", "1",
            "--batch-size", "12", "--sample-count", "12", *SMALL_DISENTANGLEMENT]
    assert evaluate_cli.main(argv) == 0          # capsys: stderr is not a terminal
    lines = capsys.readouterr().err.splitlines()
    stages = ["fitting the sampling Gaussian to 512", f"encoding and decoding {COUNT} images",
              "Table 4 regression on up to 24", "β-VAE score: 16 points of 2 pairs (64 hands",
              "random samples: 12 per source", "done"]
    assert len(lines) == len(stages), lines
    seconds = []
    for line, stage in zip(lines, stages):
        prefix, rest = line.split(" s  ", 1)
        assert prefix.startswith("handlatent-eval: ") and rest.startswith(stage), line
        seconds.append(float(prefix.split(":")[1]))
    assert seconds == sorted(seconds)
    assert evaluate_cli.main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def _png(path, min_side=64):
    assert path.is_file() and path.stat().st_size > 1000, path
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side
        return im.size


def test_plots_and_figures_are_pngs(cli_run):
    out, _ = cli_run
    _png(out / "plots" / "pck.png", 200)
    w, h = _png(out / "plots" / "reconstructions.png")
    assert w < h  # 3 columns (input | reconstruction | from labels), 8 rows
    for name in FIGURES:
        _png(out / "figs" / f"{name}.png", 128)


def test_figures_are_deterministic(synth_data, checkpoint, tmp_path):
    from handlatent import load_model
    from handlatent.data import open_dataset
    from handlatent.explorer.sampling import fit_hands
    from handlatent.explorer.stats import encode_hands
    from handlatent.training.figures import make_figures

    model, ds = load_model(checkpoint, device="cpu"), open_dataset(synth_data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's 2 cores are shared
    try:
        hands = fit_hands(*encode_hands(model, n=8))
        a = make_figures(model, ds, tmp_path / "a", hands=hands, seed=5, steps=3)
        b = make_figures(model, ds, tmp_path / "b", hands=hands, seed=5, steps=3)
    finally:
        torch.set_num_threads(threads)
    for pa, pb in zip(a, b):
        assert np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb))), pa.name


def test_bad_checkpoint_exits_2_with_one_line(synth_data, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    for path in (bad, tmp_path / "missing.pt"):
        assert evaluate_cli.main(["--checkpoint", str(path), "--data", str(synth_data),
                                  "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_bad_dataset_exits_2_with_one_line(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "missing", tmp_path / "empty"):
        assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--data", str(path),
                                  "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_beta_vae_on_chosen_factor_groups(synth_data, checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    base = ["--checkpoint", str(checkpoint), "--data", str(synth_data), "--quiet",
            "--threads", "1", *SMALL_DISENTANGLEMENT]
    assert evaluate_cli.main([*base, "--json", str(out),
                              "--beta-vae-factors", "pose", "viewpoint"]) == 0
    bv = json.loads(out.read_text())["disentanglement"]["beta_vae"]
    assert bv["factors"] == ["pose", "viewpoint"] and 0.0 <= bv["score"] <= 1.0
    capsys.readouterr()
    for factors in (["pose", "colour"], ["pose"]):
        assert evaluate_cli.main([*base, "--beta-vae-factors", *factors]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "β-VAE factors" in err and "Traceback" not in err


def test_wrong_image_size_exits_2(synth_data, tmp_path, capsys):
    path = tmp_path / "m128.pt"
    save_checkpoint(path, build_model(ModelConfig(image_size=128, z_y1=4, z_y2=4, z_u=2,
                                                  hidden=8, decoder_channels=8)))
    assert evaluate_cli.main(["--checkpoint", str(path), "--data", str(synth_data),
                              "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "64 px" in err and "128 px" in err


# ------------------------------------------------------------------------------ known answer


def oracle_with_offsets(dataset, offset_m: float, hidden_offset_m: float) -> OracleModel:
    """GT pose off by `offset_m` on the visible keypoints and `hidden_offset_m` on hidden ones."""
    visible = torch.stack([dataset[i]["visible"] for i in range(len(dataset))])
    return OracleModel(dataset, torch.where(visible, offset_m, hidden_offset_m))


def test_known_answer_units_handedness_visibility(synth_data):
    from handlatent.data import open_dataset

    ds = open_dataset(synth_data)
    right = np.array([bool(ds[i]["is_right"]) for i in range(len(ds))])
    visible = np.stack([ds[i]["visible"].numpy() for i in range(len(ds))])
    assert right.any() and (~right).any() and not visible.all()  # the test must see both
    oracle = oracle_with_offsets(ds, offset_m=0.030, hidden_offset_m=0.5)
    r, _ = evaluate(oracle, ds, EvalOptions(batch_size=10, disentanglement=False, progress=False))
    # Every visible keypoint is exactly 30 mm off: PCK steps from 0 to 1 between 28.95 and 31.58 mm.
    gt = np.random.default_rng(1).normal(0, 0.04, (4, 21, 3))
    expected = evaluate_pose(gt + np.array([0.030, 0, 0]), gt)
    assert expected["auc_20_50"] == pytest.approx((0.5 + 7) / 11)
    assert r["auc_20_50"] == pytest.approx(expected["auc_20_50"], abs=1e-12)
    assert r["pck"]["values"] == pytest.approx(expected["pck"]["values"], abs=1e-12)
    assert r["epe_mean_mm"] == pytest.approx(30.0, abs=1e-3)
    # The oracle decodes the GT CPose and viewpoint (the offset is in xyz alone): composing them
    # the evaluator's way must give the ground truth back, whichever half comes from the "model".
    for half in ("gt_viewpoint", "gt_cpose"):
        assert r["error_split"][half]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3), half
        assert r["error_split"][half]["auc_20_50"] == 1.0
    assert r["epe_median_mm"] == pytest.approx(30.0, abs=1e-3)
    assert r["viewpoint_error_deg"] == pytest.approx(0.0, abs=1e-3)
    assert r["image_mse"] == 0.0
    assert r["sharpness"] == 1.0  # the oracle decodes the input itself
    hands = r["by_hand"]
    assert (hands["left"]["count"], hands["right"]["count"]) == ((~right).sum(), right.sum())
    for row in hands.values():
        assert row["epe_mean_mm"] == pytest.approx(30.0, abs=1e-3)
        assert row["viewpoint_error_deg"] == pytest.approx(0.0, abs=1e-3)


def test_known_answer_2d_keypoints_of_a_guided_decoder(synth_data):
    """The drawn keypoints' error in pixels: visible keypoints only, as the pose's; and the image
    drawn along the labels' keypoints instead, scored as the reconstruction is."""
    from handlatent.data import open_dataset

    ds = open_dataset(synth_data)
    visible = torch.stack([ds[i]["visible"] for i in range(len(ds))])
    oracle = OracleModel(ds, torch.zeros(len(ds), 21),
                         uv_error_px=torch.where(visible, 2.5, 40.0))
    r, _ = evaluate(oracle, ds, EvalOptions(batch_size=10, disentanglement=False, progress=False))
    assert r["keypoints_2d_px"] == pytest.approx(2.5, abs=1e-3)
    assert "2-D keypoints drawn (px)  2.50 mean" in format_results(r)
    # drawn along the labels' keypoints: the oracle's known brightening, 0.1 in [0, 1] units
    along = r["along_labels_uv"]
    assert along["image_psnr_db"] == pytest.approx(20.0, abs=1e-4)
    assert along["hand_psnr_db"] == pytest.approx(20.0, abs=1e-4)
    assert along["sharpness"] == pytest.approx(1.0)  # a constant offset keeps every edge
    assert "  drawn along labels uv     20.00 / 20.00 dB, sharpness 1.000" in format_results(r)
    plain, _ = evaluate(oracle_with_offsets(ds, 0.01, 0.5), ds,
                        EvalOptions(batch_size=10, disentanglement=False, progress=False))
    assert "keypoints_2d_px" not in plain  # no guide, no drawn keypoints
    assert "along_labels_uv" not in plain


def test_known_answer_through_the_cli(synth_data, tmp_path, monkeypatch, capsys):
    """The same oracle behind `handlatent-eval` (load_model patched): the CLI path and its JSON."""
    import handlatent.checkpoint
    from handlatent.data import open_dataset

    oracle = oracle_with_offsets(open_dataset(synth_data), offset_m=0.010, hidden_offset_m=0.5)
    monkeypatch.setattr(handlatent.checkpoint, "load_model", lambda path, device: oracle)
    out = tmp_path / "r.json"
    assert evaluate_cli.main(["--checkpoint", "oracle.pt", "--data", str(synth_data), "--json",
                              str(out), "--no-disentanglement", "--quiet", "--limit", "20",
                              "--sample-count", "0"]) == 0
    r = json.loads(out.read_text())
    assert r["count"] == 20 and r["disentanglement"] is None and r["samples"] is None
    assert r["auc_20_50"] == 1.0 and r["epe_mean_mm"] == pytest.approx(10.0, abs=1e-3)
    assert "AUC 20-50 mm" in capsys.readouterr().out
