"""The CUDA path, and the one-line refusals of every command asked for CUDA where there is none.

Tests marked `cuda` are skipped without a GPU (tests/conftest.py); on a GPU machine
`pytest -m cuda tests/test_cuda.py` checks device moves, checkpoints loaded onto the GPU,
decoding and dragging there, and a few mixed-precision training steps. The refusals run on
machines without CUDA (skipped on a GPU machine, where the commands would not refuse).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from handlatent.checkpoint import load_checkpoint, load_model, save_checkpoint
from handlatent.explorer import Session
from handlatent.explorer.drag import pose_points
from handlatent.model import ModelConfig, build_model
from handlatent.training.config import ConfigError, load_config
from handlatent.training.train import train

SMOKE = Path(__file__).resolve().parents[1] / "training" / "configs" / "smoke.yaml"
STATS = {"kl_per_dim": [1.0] * 16}
no_cuda_here = pytest.mark.skipif(torch.cuda.is_available(),
                                  reason="checks the refusal on a machine without CUDA")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small random 64 px model saved on the CPU."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64, z_y1=8, z_y2=4, z_u=4, hidden=64,
                                    decoder_channels=32))
    path = tmp_path_factory.mktemp("cuda") / "tiny.pt"
    save_checkpoint(path, model)
    return path


# ------------------------------------------------------------------------------ on a GPU

@pytest.mark.cuda
def test_a_checkpoint_loads_onto_the_gpu_and_decodes_as_on_the_cpu(checkpoint, tmp_path):
    cpu, gpu = load_model(checkpoint, "cpu"), load_model(checkpoint, "cuda")
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    assert gpu.image_mean.device.type == "cuda"
    z = cpu.sample_prior(4, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = cpu.decode(z), gpu.decode(z.cuda())
    for key in ("image", "xyz", "cpose", "viewpoint"):
        assert b[key].device.type == "cuda"
        torch.testing.assert_close(b[key].cpu(), a[key], atol=2e-3, rtol=2e-3)
    save_checkpoint(tmp_path / "from-gpu.pt", gpu)          # written from the GPU ...
    back = load_checkpoint(tmp_path / "from-gpu.pt")["state_dict"]
    assert all(v.device.type == "cpu" for v in back.values())  # ... read back on the CPU
    for name, value in cpu.state_dict().items():
        assert torch.equal(back[name].float(), value.float()), name


@pytest.mark.cuda
def test_a_session_on_the_gpu_decodes_encodes_and_drags(checkpoint):
    cpu = Session.from_checkpoint(checkpoint, device="cpu", asynchronous=False,
                                  latent_stats=STATS)
    with Session.from_checkpoint(checkpoint, device="cuda", latent_stats=STATS) as gpu:
        assert gpu.device.startswith("cuda") and gpu.runner.device.type == "cuda"
        z = gpu.stats.sample(0, source="prior")
        gpu.set_latent(z)
        assert gpu.wait_idle(30)
        frame, expected = gpu.last_decoded, cpu.decode_now(z)
        np.testing.assert_array_equal(frame.z, z)
        assert np.abs(frame.image.astype(int) - expected.image.astype(int)).max() <= 2
        np.testing.assert_allclose(frame.xyz, expected.xyz, atol=2e-3)
        np.testing.assert_allclose(gpu.runner.encode(expected.image),
                                   cpu.runner.encode(expected.image), atol=2e-3)
        start = pose_points(gpu.model, z, "xyz")[5]
        gpu.begin_drag(5)
        gpu.drag_to(start + 0.05)
        gpu.end_drag()
        assert gpu.wait_idle(30) and not np.array_equal(gpu.latent, z)
        u = gpu.layout.slices["z_u"]
        np.testing.assert_array_equal(gpu.latent[u], z[u])     # content stays
    cpu.close()


@pytest.mark.cuda
@pytest.mark.parametrize("amp, channels_last", [("fp16", False), ("bf16", True)])
def test_a_few_mixed_precision_training_steps_on_the_gpu(tmp_path, amp, channels_last):
    cfg = load_config(SMOKE, ["run.device=cuda", f"run.amp={amp}",
                              f"run.channels_last={str(channels_last).lower()}", "run.steps=6",
                              "run.val_interval=3"])
    summary = train(cfg, tmp_path / "run")
    assert summary["step"] == 6 and summary["stopped_by"] is None
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == list(range(1, 7))
    assert all(math.isfinite(r["total"]) for r in lines)
    model = load_model(tmp_path / "run" / "last.pt", "cpu")
    with torch.no_grad():
        assert torch.isfinite(model.decode(model.sample_prior(2))["image"]).all()


# ------------------------------------------------------------------------------ without one

@no_cuda_here
def test_training_refuses_cuda_and_fp16_without_a_gpu(tmp_path, capsys):
    from handlatent.training.cli import main
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        train(load_config(SMOKE, ["run.amp=fp16"]), tmp_path / "fp16")
    with pytest.raises(ConfigError, match="run.device: CUDA is not available on this machine"):
        train(load_config(SMOKE, ["run.device=cuda"]), tmp_path / "cuda")
    assert main(["--config", str(SMOKE), "--out", str(tmp_path / "cli"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["handlatent-train: run.device: CUDA is not available on this machine"]
    assert not (tmp_path / "cli").exists() or not any((tmp_path / "cli").iterdir())


@no_cuda_here
def test_the_other_commands_refuse_cuda_without_a_gpu(checkpoint, tmp_path, capsys):
    from PIL import Image

    from handlatent.estimate_cli import main as estimate
    from handlatent.training.evaluate_cli import main as evaluate
    image = tmp_path / "hand.png"
    Image.new("RGB", (64, 64), (200, 150, 120)).save(image)
    assert estimate([str(image), "--out", str(tmp_path / "poses.json"),
                     "--checkpoint", str(checkpoint), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: no CUDA device is available" in err[0]
    assert evaluate(["--checkpoint", str(checkpoint), "--data", str(tmp_path),
                     "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: CUDA is not available" in err[0]
    pytest.importorskip("PySide6")
    from handlatent.app.cli import CliError, load_session
    with pytest.raises(CliError, match="--device cuda: no CUDA device is available"):
        load_session(str(checkpoint), "cuda")
