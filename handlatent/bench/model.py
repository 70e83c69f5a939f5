"""Batch-1 latency of the dVAE's decode (image + pose) and image encode at 64/128/256 px."""

from __future__ import annotations

import torch

from handlatent.bench.timing import summarize_ms, time_calls
from handlatent.model import ModelConfig, build_model


def bench_model(sizes: tuple[int, ...] = (64, 128, 256), repeats: int = 200,
                device: str = "cpu") -> list[dict[str, object]]:
    """One row per image size: decode and encode latency of a freshly initialised model."""
    rows = []
    for size in sizes:
        model = build_model(ModelConfig(image_size=size)).to(device).eval()
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
            rows.append({"size": size,
                         "decode": summarize_ms(time_calls(decode, repeats=repeats)),
                         "encode": summarize_ms(time_calls(encode, repeats=max(20, repeats // 4)))})
    return rows
