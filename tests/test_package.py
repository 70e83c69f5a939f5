"""Packaging a training checkpoint into the shipped model format."""

from __future__ import annotations

import torch

from handlatent.checkpoint import load_checkpoint, load_model, save_checkpoint
from handlatent.dim_labels import label_dimensions
from handlatent.model import ModelConfig, build_model
from handlatent.training.package import main


def test_package_halves_weights_adds_latent_stats_and_drops_optimizer(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64, z_y1=4, z_y2=2, z_u=2, hidden=32,
                                    decoder_channels=16))
    src, dst = tmp_path / "last.pt", tmp_path / "ship" / "model.pt"
    save_checkpoint(src, model, extra={"step": 7, "optimizer": {"state": {}}, "config": {"a": 1}})

    assert main([str(src), str(dst), "--kl-samples", "8"]) == 0
    assert "wrote" in capsys.readouterr().out

    shipped = load_checkpoint(dst)
    assert "optimizer" not in shipped["extra"]
    assert shipped["extra"]["training"]["step"] == 7
    kl = shipped["extra"]["latent_stats"]["kl_per_dim"]
    assert len(kl) == 8 and all(v >= 0 for v in kl)
    labels = shipped["extra"]["dim_labels"]          # what each slider moves, named once
    assert labels["names"] == list(label_dimensions(load_model(dst, device="cpu")).names)
    assert labels["names"][6:] == ["", ""]            # z_u reaches no pose decoder
    floats = [t for t in shipped["state_dict"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    reloaded = load_model(dst, device="cpu")
    z = torch.zeros(1, 8)
    with torch.inference_mode():
        expected = model.eval().decode(z)["xyz"]
        assert torch.allclose(reloaded.decode(z)["xyz"], expected, atol=5e-2)


def test_package_reports_a_bad_source_in_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("package: ") and "bad.pt" in err and "\n" not in err
