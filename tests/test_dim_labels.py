"""Slider names from the pose decoders (handlatent.dim_labels): a stand-in model whose decoders
are built so that each dimension moves one known thing, and the checkpoint round trip."""

from __future__ import annotations

import re

import numpy as np
import torch
from test_pose_measures import hand

from handlatent.checkpoint import save_checkpoint
from handlatent.dim_labels import label_dimensions, stored_dim_labels
from handlatent.explorer import LatentGaussian, Session
from handlatent.explorer.models import open_model, prepare_switch
from handlatent.model import LatentLayout, ModelConfig, build_model
from handlatent.rotations import rotation_about


class KnownDecoders(torch.nn.Module):
    """Pose decoders where z_y1[0] bends the index PIP by 30° per unit, z_y1[1] straightens
    the little finger's MCP by 20° per unit (from 40°), z_y1[2] does nothing, z_y2[0] rolls
    the hand (about the camera's z) and z_y2[1] pitches it (about x) by 15° per unit."""

    def __init__(self) -> None:
        super().__init__()
        self.layout = LatentLayout(z_y1=3, z_y2=2, z_u=1)
        self.anchor = torch.nn.Parameter(torch.zeros(1))   # a device for the latents

    def decode_pose(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        z = z.double().numpy()
        cpose = np.stack([hand(flex={1: (0.0, 30.0 * v[0], 0.0), 4: (40.0 - 20.0 * v[1], 0, 0)})
                          for v in z])
        view = np.stack([rotation_about("z", np.radians(15 * v[3]))
                         @ rotation_about("x", np.radians(15 * v[4])) for v in z])
        return {"cpose": torch.from_numpy(cpose), "viewpoint": torch.from_numpy(view)}


def test_each_dimension_is_named_for_the_joint_it_moves() -> None:
    labels = label_dimensions(KnownDecoders())
    assert labels.names == ("index curls", "little opens", "", "roll", "pitch", "")
    assert "index +60°" in labels.details[0]            # 30° per σ over 2σ
    assert "little -40°" in labels.details[1]
    turn = dict(re.findall(r"(pitch|yaw|roll) (\d+)°", labels.details[3]))
    assert int(turn["roll"]) >= 25 and int(turn["pitch"]) <= 1   # the pitch tilts its axis


def test_labels_survive_a_checkpoint_and_are_computed_when_absent(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64, z_y1=4, z_y2=2, z_u=2, hidden=32,
                                    decoder_channels=16)).eval()
    labels = label_dimensions(model)
    assert len(labels.names) == 8 and labels.names[6:] == ("", "")
    assert all(name in ("", "roll", "pitch", "yaw") for name in labels.names[4:6])
    assert stored_dim_labels({"dim_labels": labels.to_extra()}, 8) == labels
    assert stored_dim_labels({"dim_labels": {"names": ["x"]}}, 8) is None
    plain = tmp_path / "plain.pt"           # latent statistics given: none to estimate
    stats = {"kl_per_dim": [1.0] * 8, "hands": LatentGaussian(np.zeros(8), np.eye(8)).to_stats()}
    save_checkpoint(plain, model, extra={"latent_stats": stats})
    with Session.from_checkpoint(plain, device="cpu", asynchronous=False) as session:
        assert session.dim_labels == labels           # computed on first use
        switch = prepare_switch(open_model(plain, "cpu"), session.latent, session.layout, {})
        assert switch.dim_labels == labels            # computed off the driving thread
        session.switch_model(switch)
        assert session.dim_labels is switch.dim_labels
    stored = tmp_path / "named.pt"
    fake = labels.to_extra() | {"names": ["stored"] * 8}
    save_checkpoint(stored, model, extra={"dim_labels": fake})
    with Session.from_checkpoint(stored, device="cpu", asynchronous=False) as session:
        assert session.dim_labels.names == ("stored",) * 8    # read, not recomputed
