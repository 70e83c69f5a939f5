"""Batch-1 latency of the dVAE's decode (image + pose) and image encode at 64/128/256 px, for the
paper's image decoder (5x5 transposed convolutions, BatchNorm), the recipe ablation's
(nearest-neighbour upsampling + 3x3 convolutions, GroupNorm) and the paper's guided by bone
maps (model.decoder_guide: bones)."""

from __future__ import annotations

import torch

from handlatent.bench.timing import summarize_ms, time_calls
from handlatent.checkpoint import for_inference
from handlatent.model import ModelConfig, build_model


# (upsample, norm, guide): the paper's, the ablation's, the paper's with bone maps
DECODERS = (("tconv5", "batch", "none"), ("nearest", "group", "none"),
            ("tconv5", "batch", "bones"))


def bench_model(sizes: tuple[int, ...] = (64, 128, 256), repeats: int = 200,
                device: str = "cpu", decoders: tuple[tuple[str, str, str], ...] = DECODERS
                ) -> list[dict[str, object]]:
    """One row per image size and decoder: decode and encode latency of a fresh model."""
    rows = []
    for size, (upsample, norm, guide) in ((s, d) for s in sizes for d in decoders):
        config = ModelConfig(image_size=size, decoder_upsample=upsample, decoder_norm=norm,
                             decoder_guide=guide)
        model = for_inference(build_model(config), device)  # as load_model gives it
        z = torch.randn(1, model.layout.total, device=device)
        image = torch.rand(1, 3, size, size, device=device) * 2 - 1

        def decode() -> None:
            model.decode(z)
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        def encode() -> None:
            model.encode_image(image)
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        with torch.inference_mode():
            name = f"{upsample}+{norm}" + ("" if guide == "none" else f"+{guide}")
            rows.append({"size": size, "decoder": name,
                         "decode": summarize_ms(time_calls(decode, repeats=repeats)),
                         "encode": summarize_ms(time_calls(encode, repeats=max(20, repeats // 4)))})
    return rows
