"""Batch-1 latency of the dVAE's decode (image + pose) and image encode at 64/128/256 px, for the
paper's image decoder (5x5 transposed convolutions, BatchNorm), the recipe ablation's
(nearest-neighbour upsampling + 3x3 convolutions, GroupNorm) and the paper's guided by bone
maps (model.decoder_guide: bones)."""

from __future__ import annotations

from typing import Callable

import torch

from handlatent.bench.timing import summarize_ms, time_interleaved
from handlatent.checkpoint import for_inference
from handlatent.model import ModelConfig, build_model


# (upsample, norm, guide): the paper's, the ablation's, the paper's with bone maps
DECODERS = (("tconv5", "batch", "none"), ("nearest", "group", "none"),
            ("tconv5", "batch", "bones"))


def bench_model(sizes: tuple[int, ...] = (64, 128, 256), repeats: int = 200,
                device: str = "cpu", decoders: tuple[tuple[str, str, str], ...] = DECODERS
                ) -> list[dict[str, object]]:
    """One row per image size and decoder: decode and encode latency of a fresh model. The
    decoders of one size are timed call by call in turn (`time_interleaved`), so their ratio
    survives a machine whose speed drifts during the run."""
    rows = []
    for size in sizes:
        decode, encode = {}, {}
        for upsample, norm, guide in decoders:
            config = ModelConfig(image_size=size, decoder_upsample=upsample, decoder_norm=norm,
                                 decoder_guide=guide)
            model = for_inference(build_model(config), device)  # as load_model gives it
            z = torch.randn(1, model.layout.total, device=device)
            image = torch.rand(1, 3, size, size, device=device) * 2 - 1
            name = f"{upsample}+{norm}" + ("" if guide == "none" else f"+{guide}")
            decode[name] = _synchronised(lambda m=model, z=z: m.decode(z), device)
            encode[name] = _synchronised(lambda m=model, x=image: m.encode_image(x), device)
        with torch.inference_mode():
            decoded = time_interleaved(decode, repeats=repeats)
            encoded = time_interleaved(encode, repeats=max(20, repeats // 4))
        rows += [{"size": size, "decoder": name, "decode": summarize_ms(decoded[name]),
                  "encode": summarize_ms(encoded[name])} for name in decode]
    return rows


def _synchronised(fn: Callable[[], object], device: str) -> Callable[[], None]:
    """`fn`, waiting for the GPU to finish where `device` is CUDA (timings then hold)."""
    def call() -> None:
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return call
