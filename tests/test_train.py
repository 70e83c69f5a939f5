"""handlatent-train end to end on the smoke config (CPU, seconds): the run directory, exact
resume, SIGTERM, and two gloo processes under torchrun."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import handlatent
from handlatent.checkpoint import load_checkpoint, load_model
from handlatent.model import build_model
from handlatent.training.config import ConfigError, load_config
from handlatent.training.data import DeterministicBatches
from handlatent.training.schedule import LRSchedule
from handlatent.training.train import train
from handlatent.training.warm_start import initialise

SMOKE = Path(__file__).resolve().parents[1] / "training" / "configs" / "smoke.yaml"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "handlatent.training.cli", *args]


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke config exactly as shipped: renders its dataset on the fly, trains 4 steps."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    summary = train(load_config(SMOKE), out)
    assert summary["step"] == 4 and summary["stopped_by"] is None
    return out


@pytest.fixture(scope="module")
def data_dir(smoke_run) -> Path:
    """The smoke run's rendered dataset, reused by the other tests (--set data.train=...)."""
    return smoke_run / "synthetic-data"


def test_smoke_run_writes_the_run_directory(smoke_run):
    assert load_config(smoke_run / "config.yaml") == load_config(SMOKE)

    lines = read_metrics(smoke_run)
    train_lines = [r for r in lines if r["split"] == "train"]
    val_lines = [r for r in lines if r["split"] == "val"]
    assert [r["step"] for r in train_lines] == [1, 2, 3, 4]
    assert [r["step"] for r in val_lines] == [2, 4]
    for r in train_lines:
        for key in ("total", "dis/image", "emb/kl_z_y1", "dis/kl_z_y2", "emb/kl_z_u", "lr",
                    "images_per_s", "data_wait", "epoch"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r)
        assert 0.0 <= r["data_wait"] <= 1.0
    assert all(math.isfinite(r[k]) for r in val_lines for k in r if k not in ("split", "step"))
    assert val_lines[-1]["total"] < val_lines[0]["total"]  # lr 1e-3: it learns something

    events = list((smoke_run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0

    last = load_checkpoint(smoke_run / "last.pt")["extra"]
    assert (last["step"], last["epoch"], last["batch"]) == (4, 1, 1)  # 3 batches an epoch
    assert set(last) >= {"optimizer", "scheduler", "scaler", "rng", "best_val_loss", "config"}
    assert last["config"]["model"]["image_size"] == 64
    best = load_checkpoint(smoke_run / "best.pt")["extra"]
    assert best["val_loss"] == min(r["total"] for r in val_lines)
    model = handlatent.load_model(smoke_run / "best.pt", "cpu")
    z = torch.zeros(2, model.layout.total)
    assert model.decode(z)["image"].shape == (2, 3, 64, 64)


def test_existing_run_is_not_overwritten(smoke_run):
    with pytest.raises(ConfigError, match="already holds a run"):
        train(load_config(SMOKE), smoke_run)


def test_resume_refuses_another_model(smoke_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("tensorboard"))
    with pytest.raises(ConfigError, match="model.hidden: 64 in the checkpoint, 32 now"):
        train(load_config(SMOKE, ["model.hidden=32"]), out, resume=True)


def test_resume_of_a_run_saved_before_the_decoder_options(smoke_run, tmp_path):
    """A last.pt whose config lacks model fields added since (decoder_upsample, decoder_norm)
    means their defaults: the run resumes."""
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("tensorboard"))
    ckpt = torch.load(out / "last.pt", weights_only=True)
    for key in ("decoder_upsample", "decoder_norm"):
        del ckpt["extra"]["config"]["model"][key]
    torch.save(ckpt, out / "last.pt")
    assert train(load_config(SMOKE, ["run.steps=5"]), out, resume=True)["step"] == 5


def test_init_starts_from_a_checkpoints_weights(smoke_run, data_dir, tmp_path):
    """run.init fine-tunes: step 0 of the new run sees the given weights, not a fresh init."""
    init = smoke_run / "best.pt"
    sets = [f"data.train={data_dir}", "run.steps=1", "optim.lr=1e-12"]
    train(load_config(SMOKE, sets + [f"run.init={init}"]), tmp_path / "tuned")
    train(load_config(SMOKE, sets + ["run.seed=7"]), tmp_path / "fresh")
    start = load_checkpoint(init)["state_dict"]
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")["state_dict"]
    fresh = load_checkpoint(tmp_path / "fresh" / "last.pt")["state_dict"]
    learned = [k for k in start if "running" not in k and "num_batches" not in k]
    assert len(learned) > 50
    assert all(torch.allclose(tuned[k].float(), start[k].float(), atol=1e-6) for k in learned)
    assert sum(not torch.allclose(fresh[k].float(), start[k].float(), atol=1e-3)
               for k in learned) > len(learned) // 2

    with pytest.raises(ConfigError, match=r"run\.init.*differs from this run's"):
        train(load_config(SMOKE, sets + [f"run.init={init}", "model.hidden=32"]),
              tmp_path / "other")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pt: not a PyTorch checkpoint"):
        train(load_config(SMOKE, sets + [f"run.init={tmp_path / 'junk.pt'}"]), tmp_path / "j")


def test_init_by_shapes_takes_the_matching_tensors_under_a_new_decoder(smoke_run, data_dir,
                                                                      tmp_path, capsys):
    init = smoke_run / "best.pt"
    sets = [f"data.train={data_dir}", "run.steps=1", "optim.lr=1e-12", f"run.init={init}",
            "run.init_match=shapes", "model.decoder_upsample=nearest"]
    train(load_config(SMOKE, sets), tmp_path / "tuned")
    assert "fresh where they differ: image_decoder" in capsys.readouterr().out
    start = load_checkpoint(init)["state_dict"]
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")["state_dict"]
    encoder = [k for k in start if k.startswith(("image_encoder.", "cpose_")) and "running" not
               in k and "num_batches" not in k]
    assert len(encoder) > 50
    assert all(torch.allclose(tuned[k].float(), start[k].float(), atol=1e-6) for k in encoder)
    assert tuned["image_decoder.to_rgb.0.1.weight"].shape[-1] == 3  # the new 3x3 convolution
    with pytest.raises(ConfigError, match="run.init.*latent layout"):
        train(load_config(SMOKE, sets + ["model.z_u=5"]), tmp_path / "other")


def test_init_by_shapes_widens_the_decoder_for_bone_maps_so_it_draws_the_same(smoke_run,
                                                                             data_dir, capsys):
    """An unguided model under a bone-guided decoder: the convolutions' new input channels start
    at zero, so the images are the init's until training weighs the bones."""
    init = smoke_run / "best.pt"
    cfg = load_config(SMOKE, [f"data.train={data_dir}", f"run.init={init}",
                              "run.init_match=shapes", "model.decoder_guide=bones"])
    model = build_model(cfg.model)
    initialise(model, cfg, verbose=True)
    out = capsys.readouterr().out
    assert "3 tensors given new inputs, at zero: image_decoder.blocks.0.0.weight" in out  # 64 px
    assert "fresh where they differ: image_decoder" in out  # the keypoint MLP
    source = load_model(init, device="cpu").eval()
    z = source.sample_prior(3)
    with torch.no_grad():
        assert torch.allclose(model.eval().decode(z)["image"], source.decode(z)["image"],
                              atol=1e-6)
    weight = model.image_decoder.to_rgb[0].weight  # ConvTranspose2d: (inputs, outputs, 5, 5)
    assert weight.shape[0] == source.image_decoder.to_rgb[0].weight.shape[0] + 5
    assert weight[-5:].abs().max() == 0


def test_resume_matches_an_uninterrupted_run(data_dir, tmp_path):
    # 4 steps of 8 over 24 training images: the run crosses an epoch boundary after step 3,
    # the resumed half starts inside epoch 0 (batch 2 of 3)
    sets = [f"data.train={data_dir}", "run.steps=4", "run.val_interval=1",
            "run.ckpt_interval=100", "optim.schedule=plateau", "optim.patience=0",
            "optim.threshold=0.5"]  # the plateau rule fires at step 2: its state matters
    cfg = load_config(SMOKE, sets)
    train(cfg, tmp_path / "straight")
    train(cfg, tmp_path / "resumed", stop_after=2)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["extra"]["scheduler"]["scale"] < 1
    train(cfg, tmp_path / "resumed", resume=True)
    train(cfg, tmp_path / "resumed", resume=True)

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    a, b = a["extra"], b["extra"]
    assert (a["step"], a["epoch"], a["batch"]) == (b["step"], b["epoch"], b["batch"]) == (4, 1, 1)
    assert a["scheduler"] == b["scheduler"] and a["scheduler"]["scale"] < 1.0
    # every step logged once, the same numbers as the uninterrupted run
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [(r["split"], r["step"]) for r in straight] == [(r["split"], r["step"]) for r in resumed]
    for r, s in zip(straight, resumed):
        assert r["total"] == pytest.approx(s["total"], rel=1e-6)


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_time_budget_stops_after_the_step_that_spends_it(data_dir, tmp_path, clock):
    """run.time_budget_min ends the run early like a signal: last.pt saved, resumable."""
    sets = [f"data.train={data_dir}", "run.steps=50", "run.val_interval=100",
            "run.time_budget_min=1e-6", f"run.time_clock={clock}"]
    summary = train(load_config(SMOKE, sets), tmp_path / "run")
    assert summary["step"] == 1 and summary["stopped_by"] == f"time_budget_min=1e-06 ({clock})"
    assert load_checkpoint(tmp_path / "run" / "last.pt")["extra"]["step"] == 1
    summary = train(load_config(SMOKE, sets), tmp_path / "run", resume=True)
    assert summary["step"] == 2
    with pytest.raises(ConfigError, match="run.time_budget_min: must be > 0"):
        load_config(SMOKE, ["run.time_budget_min=0"])


def test_sigterm_saves_last_pt_and_exits_0_and_the_run_resumes(data_dir, tmp_path):
    """SIGTERM to the whole process group (as torchrun, Slurm or a Ctrl-C do): the DataLoader
    worker must survive it, the trainer finish its step and save. `handlatent-train --out DIR
    --resume` (no --config: it reads DIR/config.yaml) then continues to the end it is given,
    with exactly the weights of a run that was never interrupted."""
    out = tmp_path / "run"
    proc = subprocess.Popen(cli("--config", str(SMOKE), "--out", str(out),
                                "--set", f"data.train={data_dir}", "--set", "run.steps=100000",
                                "--set", "run.val_interval=100000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training step within 60 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped by SIGTERM after step" in stdout
    ckpt = load_checkpoint(out / "last.pt")["extra"]
    assert 1 <= ckpt["step"] < 100000
    assert handlatent.load_model(out / "last.pt", "cpu").config.image_size == 64

    end = ckpt["step"] + 2
    result = subprocess.run(cli("--out", str(out), "--resume", "--set", f"run.steps={end}"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"resuming {out}" in result.stdout and f"step {ckpt['step']} of {end}" in result.stdout
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["extra"]["step"] == end
    assert [r["step"] for r in read_metrics(out) if r["split"] == "train"] == \
        list(range(1, end + 1))                          # every step once, none lost or doubled
    straight = train(load_config(SMOKE, [f"data.train={data_dir}", f"run.steps={end}",
                                         "run.val_interval=100000"]), tmp_path / "straight")
    assert straight["step"] == end
    expected = load_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    for name, value in expected.items():
        assert torch.equal(value, resumed["state_dict"][name]), name


def test_cli_resume_refuses_nothing_to_resume_and_a_changed_batch_size(smoke_run, tmp_path,
                                                                       capsys):
    from handlatent.training.cli import main
    assert main(["--out", str(tmp_path / "empty"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"handlatent-train: nothing to resume: {tmp_path / 'empty' / 'last.pt'} "
                   "does not exist"]
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("tensorboard"))
    before = (out / "last.pt").read_bytes()
    assert main(["--out", str(out), "--resume", "--set", "data.batch_size=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["handlatent-train: data.batch_size: 8 in the checkpoint, 4 now: a resumed run "
                   "needs the same"]
    assert (out / "last.pt").read_bytes() == before      # refused before anything was written


def test_bf16_channels_last_training_learns(data_dir, tmp_path):
    """The bundled model's recipe (bf16 autocast, channels_last) on the CPU: every logged number
    finite, and the training loss falls (the mean of the last three steps at least 10 % below
    that of the first three; 21 % here, as in fp32). The validation loss of so short a run is no
    measure: eval-mode batch norm with running statistics of a few batches makes it jump."""
    cfg = load_config(SMOKE, [f"data.train={data_dir}", "run.amp=bf16", "run.channels_last=true",
                              "run.steps=12", "run.val_interval=6"])
    assert train(cfg, tmp_path / "run")["step"] == 12
    lines = read_metrics(tmp_path / "run")
    assert all(math.isfinite(v) for r in lines for k, v in r.items()
               if k not in ("split", "step"))
    train_loss = [r["total"] for r in lines if r["split"] == "train"]
    assert len(train_loss) == 12 and [r["step"] for r in lines if r["split"] == "val"] == [6, 12]
    assert sum(train_loss[-3:]) < 0.9 * sum(train_loss[:3])


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """Two gloo processes on the CPU (one thread each), as `torchrun --nproc_per_node=2`."""
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone",
               "--nproc_per_node=2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_gloo_processes_under_torchrun(data_dir, tmp_path):
    """Two processes: rank 0 alone writes; both ranks hold the same weights after the steps;
    each validation is the mean over the whole validation set, every sample counted once
    (5 samples: shares of 3 and 2); and a run stopped after its first step and resumed (without
    --config) makes exactly the updates of the uninterrupted run."""
    out = tmp_path / "run"
    sets = [f"data.train={data_dir}", "run.steps=4", "data.val_count=5"]
    result = torchrun(str(Path(__file__).with_name("ddp_probe.py")), str(SMOKE), str(out), *sets)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["extra"]["step"] == 4 and ckpt["extra"]["world_size"] == 2
    assert handlatent.load_model(out / "last.pt", "cpu").layout.total == 16
    lines = read_metrics(out)  # rank 0 alone writes: one line per step and validation
    assert [(r["split"], r["step"]) for r in lines] == \
        [("train", 1), ("train", 2), ("val", 2), ("train", 3), ("train", 4), ("val", 4)]
    assert (out / "best.pt").exists()

    ranks = [torch.load(out / f"rank{r}.probe", weights_only=True) for r in (0, 1)]
    for name, value in ranks[0]["weights"].items():          # the same weights on both ranks,
        assert torch.equal(value, ranks[1]["weights"][name]), name
        assert torch.equal(value, ckpt["state_dict"][name]), name  # and in last.pt
    vals = [r for r in lines if r["split"] == "val"]
    names = sorted(k for k in vals[0] if k not in ("split", "step", "epoch", "best_val_loss"))
    validations = [(a, b) for a, b in zip(ranks[0]["reduces"], ranks[1]["reduces"])
                   if a[0][-1] >= 1]  # the validation sums end with a sample count
    assert len(validations) == len(vals) == 2
    for ((in0, out0), (in1, out1)), logged in zip(validations, vals):
        assert sorted([in0[-1].item(), in1[-1].item()]) == [2.0, 3.0]   # the two shares
        torch.testing.assert_close(out0, in0 + in1)                      # summed over ranks
        torch.testing.assert_close(out1, out0)
        for name, total in zip(names, (out0[:-1] / out0[-1]).tolist()):
            assert logged[name] == pytest.approx(total, rel=1e-6), name  # the global mean

    resumed = tmp_path / "resumed"
    cli_args = ["-m", "handlatent.training.cli"]
    result = torchrun(*cli_args, "--config", str(SMOKE), "--out", str(resumed),
                      *[f"--set={s}" for s in sets + ["run.time_budget_min=1e-6"]])
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(resumed / "last.pt")["extra"]["step"] == 1
    result = torchrun(*cli_args, "--out", str(resumed), "--resume",
                      "--set", "run.time_budget_min=null")
    assert result.returncode == 0, result.stderr[-3000:]
    again = load_checkpoint(resumed / "last.pt")
    assert again["extra"]["step"] == 4 and again["extra"]["world_size"] == 2
    for name, value in ckpt["state_dict"].items():
        assert torch.equal(value, again["state_dict"][name]), name
    assert [(r["split"], r["step"], r["total"]) for r in read_metrics(resumed)] == \
        [(r["split"], r["step"], pytest.approx(r["total"], rel=1e-6)) for r in lines]


# ------------------------------------------------------------------------- the loop's pieces

def test_batches_are_a_function_of_seed_and_epoch_and_split_over_ranks():
    one = DeterministicBatches(n=50, global_batch=8, seed=3)
    assert len(one) == 6
    epoch0 = list(one)
    assert sorted(i for b in epoch0 for i in b) == sorted(one.permutation(0)[:48].tolist())
    assert list(DeterministicBatches(n=50, global_batch=8, seed=3)) == epoch0
    one.set_position(1, 0)
    assert list(one) != epoch0
    one.set_position(0, 4)  # resume skips to batch 4
    assert list(one) == epoch0[4:]
    ranks = [DeterministicBatches(n=50, global_batch=8, seed=3, rank=r, world=2) for r in (0, 1)]
    for b, (r0, r1) in enumerate(zip(*ranks)):
        assert r0 + r1 == epoch0[b]


def test_plateau_schedule_lowers_the_lr_and_round_trips(tmp_path):
    cfg = load_config(SMOKE, ["optim.schedule=plateau", "optim.patience=1",
                              "optim.lr=1e-4", "optim.warmup_steps=10"]).optim
    s = LRSchedule(cfg, total_steps=100)
    assert s.lr(0) == pytest.approx(1e-5) and s.lr(9) == pytest.approx(1e-4)
    for loss in (1.0, 0.5, 0.6, 0.7):  # two validations without improvement > patience 1
        s.observe(loss)
    assert s.lr(50) == pytest.approx(1e-5)
    t = LRSchedule(cfg, total_steps=100)
    t.load_state_dict(s.state_dict())
    assert t.lr(50) == s.lr(50)
    cosine = LRSchedule(load_config(SMOKE, ["optim.schedule=cosine", "optim.min_lr=0"]).optim, 100)
    assert cosine.lr(0) == pytest.approx(1e-3) and cosine.lr(100) == pytest.approx(0.0)


def test_loader_workers_are_stopped_even_when_training_fails(data_dir, tmp_path, monkeypatch):
    """Persistent DataLoader workers ignore SIGTERM (the trainer saves first). Kept alive by a
    traceback (as pytest keeps one), they used to hang interpreter exit in multiprocessing's
    atexit join; train() now stops them on every way out."""
    import multiprocessing

    import handlatent.training.train as train_module

    def failing_validation(*args, **kwargs):
        raise RuntimeError("validation failed")

    monkeypatch.setattr(train_module, "evaluate", failing_validation)
    cfg = load_config(SMOKE, [f"data.train={data_dir}", "data.workers=1", "run.steps=2"])
    with pytest.raises(RuntimeError, match="validation failed") as failure:
        train(cfg, tmp_path / "run")
    assert failure.traceback  # the frames (and _train's loaders) are still referenced here
    assert multiprocessing.active_children() == []


def test_the_busy_cpu_note_comes_only_once_the_data_is_open(data_dir, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    threads = torch.get_num_threads()
    (tmp_path / "empty").mkdir()
    try:
        with pytest.raises(ConfigError, match="cannot open dataset"):   # not a dataset
            train(load_config(SMOKE, [f"data.train={tmp_path / 'empty'}", "run.threads=null"]),
                  tmp_path / "failed")
        assert "CPU is busy" not in capsys.readouterr().out
        train(load_config(SMOKE, [f"data.train={data_dir}", "run.threads=null"]),
              tmp_path / "started", stop_after=1)
        out = capsys.readouterr().out
        assert "note: the CPU is busy (load average 99.0" in out
        assert out.index("CPU is busy") < out.index("training ")   # before the first step
    finally:
        torch.set_num_threads(threads)
