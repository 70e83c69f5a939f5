"""DCGAN image decoder of the supplement's Table 1, for 64, 128 or 256 px outputs.

Three choices beside the paper's (docs/model.md, "Image decoder"): how a stage doubles the size
(`upsample`), which normalisation follows it (`norm`), and whether it draws along bone maps
(`guide`).

- tconv5:   the paper's 5x5 transposed convolution, stride 2. Its kernel overlaps unevenly
            (5 taps over a stride of 2), which draws a checkerboard (Odena et al. 2016).
- tconv4:   4x4 transposed convolution, stride 2: every output pixel gets 4 taps.
- nearest:  nearest-neighbour x2 then a 3x3 convolution: no checkerboard by construction.

- batch:    BatchNorm (the paper); its running statistics mix every pass that trains it.
- group:    GroupNorm (8 groups or fewer): no running statistics, the same at training and at
            decode time, whichever pass (ELBO_dis or ELBO_emb) the batch came from.

- none:     the paper: the image from z alone.
- bones:    an MLP decodes the 21 keypoints' 2-D positions from z (trained against the labels'
            uv, loss.w_uv), and every stage's input gets the fingers' bones drawn at its size
            (bone_maps.finger_maps) as 5 more channels: the convolutions paint the hand where
            its bones lie instead of recalling a mean hand from z.
- skeleton: the same bone maps, drawn along the decoded 3D skeleton projected into the crop
            (skeleton_projection.py; `DVAE.decode` passes the keypoints): what the 3D view
            shows is what the image draws. `crop` (a small head on z) gives the projection's
            camera and crop parameters and the hand's side.

Two more choices widen the decoder where it draws the fingers (docs/model.md): `min_channels`
stops the halving of the channels at that floor (the paper: 16 at 64 px, 8 at 128 px), and
`blocks` adds that many residual blocks after each doubling stage, each reading the bone maps of
its size (`Refine`).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from handlatent.model.bone_maps import NUM_FINGERS, finger_maps
from handlatent.model.mlp import MLP
from handlatent.model.skeleton_projection import CropHead
from handlatent.model.start_fold import StartFold, foldable
from handlatent.skeleton import NUM_KEYPOINTS

START_SIZE = 8  # Table 1 reshapes the FC output to 8 x 8 x channels
UPSAMPLERS = ("tconv5", "tconv4", "nearest")
NORMS = ("batch", "group")
GUIDES = ("none", "bones", "skeleton")


def _tconv(in_channels: int, out_channels: int, bias: bool) -> nn.ConvTranspose2d:
    """5x5 transposed convolution, stride 2, that exactly doubles height and width.

    out = 2 (in - 1) - 2 padding + 5 + output_padding = 2 in needs padding 2, output_padding 1
    (the paper's padding 1 would give 2 in + 1).
    """
    return nn.ConvTranspose2d(in_channels, out_channels, 5, stride=2, padding=2,
                              output_padding=1, bias=bias)


NO_TAP = 25  # where a phase has no tap: the index of a zero appended to the 25 flattened taps


def _tap(phase: int, j: int) -> int | None:
    """The tap (row or column of `_tconv`'s 5x5 kernel) by which output phase `phase` reads the
    phase form's 3x3 window position `j`, or None where it reads none.

    `_tconv` (stride 2, padding 2) adds input i times tap k to output 2 i - 2 + k, so output
    2 m + phase reads input m + t through tap phase + 2 - 2 t; window position j reads input
    m + j - 1 (a 3x3 convolution, padding 1), hence tap phase + 4 - 2 j, where it is in 0..4:
    even outputs read three taps, odd ones two.
    """
    k = phase + 4 - 2 * j
    return k if 0 <= k < 5 else None


def _phase_taps() -> torch.Tensor:
    """(2, 2, 3, 3): for output phase (row p, column q) and window position (j, jj), the index of
    the 5x5 kernel's tap (row k, column l) flattened row-major (5 k + l), or NO_TAP."""
    taps = torch.full((2, 2, 3, 3), NO_TAP, dtype=torch.long)
    for p, q, j, jj in itertools.product((0, 1), (0, 1), range(3), range(3)):
        k, l = _tap(p, j), _tap(q, jj)
        if k is not None and l is not None:
            taps[p, q, j, jj] = 5 * k + l
    return taps


class PhaseTConv5(nn.ConvTranspose2d):
    """`_tconv` (same parameters, same checkpoints, same output to float rounding) computed as
    one 3x3 convolution giving the four output phases, then interleaving them (pixel shuffle).

    For the decoder's last stage (3 output channels) oneDNN's transposed convolution is the
    slow path: this form ran 1.7x faster at batch 1 and batch 56, and 1.3x faster forward and
    backward in bf16 training at batch 32 (docs/model.md, "Decode cost").

    The 3x3 kernel is built from the 5x5 weight at every call, except in a decoder prepared for
    inference, which keeps one in `kept` (`DCGANDecoder.prepare_for_inference`)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool) -> None:
        super().__init__(in_channels, out_channels, 5, stride=2, padding=2, output_padding=1,
                         bias=bias)
        self.register_buffer("taps", _phase_taps(), persistent=False)
        self.kept: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 (see the class)
        kernel, bias = self.kept or self.phase_weights(_memory_format(x))
        phases = nn.functional.conv2d(x, kernel, bias, padding=1)  # (B, 4 C, H, W)
        # Pixel shuffle by hand: twice torch's speed, and an empty batch backpropagates.
        b, _, h, w = phases.shape
        c_out = self.out_channels
        return (phases.view(b, c_out, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
                .reshape(b, c_out, 2 * h, 2 * w))

    def phase_weights(self, memory_format: torch.memory_format
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The 3x3 kernel (4 C_out, C_in, 3, 3) in `memory_format` and the bias of the phase
        form, built from the 5x5 weight (nine operations)."""
        c_in, c_out = self.in_channels, self.out_channels
        kernel = torch.cat([self.weight.reshape(c_in, c_out, 25),
                            self.weight.new_zeros(c_in, c_out, 1)], 2)[..., self.taps]
        kernel = kernel.permute(1, 2, 3, 0, 4, 5).reshape(4 * c_out, c_in, 3, 3)
        kernel = kernel.contiguous(memory_format=memory_format)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return kernel, bias


def _doubling(kind: str, in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """One stage's x2 upsampling convolution of the given kind (see the module docstring)."""
    if kind == "tconv5":
        return _tconv(in_channels, out_channels, bias)
    if kind == "tconv4":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(min(8, channels), channels)


class SigmoidTanh(nn.Module):
    """tanh(x) as 2 sigmoid(2x) - 1: the same values (to float rounding), and in this CPU build
    of torch sigmoid is vectorised where tanh is not (30 vs 173 us on a 128 px image)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 (see the class)
        return torch.sigmoid(2 * x) * 2 - 1


class Refine(nn.Module):
    """x + conv(ReLU(norm(conv([x, bone maps])))): a residual block at one size. Its last
    convolution starts at zero, so a decoder given new blocks draws what it drew before."""

    def __init__(self, channels: int, guided: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels + guided, channels, 3, padding=1, bias=False)
        self.norm = _norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:  # noqa: D102
        h = x if maps is None else torch.cat([x, maps], 1)
        return x + self.conv2(torch.relu(self.norm(self.conv1(h))))


class DCGANDecoder(nn.Module):
    """z -> image in [-1, 1]: FC, reshape, BN, then transposed convs doubling up to `image_size`.

    Channels halve at each stage from `channels` (Table 1: 128 -> 64, 32, 16, 8 -> 3 at 256 px),
    never below `min_channels`; 64 px uses 3 stages, 128 px 4, 256 px 5, each followed by
    `blocks` residual blocks (`Refine`). With guide "bones", `keypoints` (an MLP of width
    `hidden`) gives the normalised 2-D keypoints whose bone maps join every stage's input; with
    guide "skeleton" the caller gives them (`DVAE.decode`) and `crop` reads the crop from z.
    """

    def __init__(self, latent_size: int, image_size: int, channels: int = 128,
                 upsample: str = "tconv5", norm: str = "batch", guide: str = "none",
                 hidden: int = 512, min_channels: int = 1, blocks: int = 0) -> None:
        super().__init__()
        if upsample not in UPSAMPLERS or norm not in NORMS or guide not in GUIDES:
            raise ValueError(f"upsample must be one of {UPSAMPLERS}, norm one of {NORMS} and "
                             f"guide one of {GUIDES}, got {upsample!r}, {norm!r}, {guide!r}")
        stages = (image_size // START_SIZE).bit_length() - 1
        if image_size < 2 * START_SIZE or START_SIZE << stages != image_size:
            raise ValueError(f"image_size must be {START_SIZE} times a power of 2 (>= 16), "
                             f"got {image_size}")
        if channels >> (stages - 1) < 1:
            raise ValueError(f"channels={channels} cannot halve {stages - 1} times")
        self.channels = channels
        self.guided = NUM_FINGERS if guide != "none" else 0
        guided = self.guided
        self.keypoints = (MLP(latent_size, NUM_KEYPOINTS * 2, hidden, depth=1)
                          if guide == "bones" else None)
        self.crop = CropHead(latent_size) if guide == "skeleton" else None
        width = [max(channels >> i, min_channels) for i in range(stages)]
        self.fc = nn.Linear(latent_size, channels * START_SIZE * START_SIZE)
        self.bn = _norm(norm, channels)
        self.blocks = nn.Sequential(*[
            nn.Sequential(_doubling(upsample, width[i] + guided, width[i + 1], bias=False),
                          _norm(norm, width[i + 1]), nn.ReLU(inplace=True))
            for i in range(stages - 1)])
        self.refine = nn.ModuleList(
            nn.Sequential(*[Refine(width[i + 1], guided, norm) for _ in range(blocks)])
            for i in range(stages - 1)) if blocks else None
        last_in = width[-1] + guided
        self.to_rgb = nn.Sequential(
            PhaseTConv5(last_in, 3, bias=True) if upsample == "tconv5"
            else _doubling(upsample, last_in, 3, bias=True), SigmoidTanh())
        self.foldable = bool(len(self.blocks)) and foldable(self.fc, self.bn, self.blocks[0])
        self.prepared = False  # for inference: see prepare_for_inference
        self.start_fold: StartFold | None = None
        self.register_load_state_dict_post_hook(_rebuild_after_load)

    def prepare_for_inference(self) -> DCGANDecoder:
        """Evaluation mode, every weight frozen (requires_grad False), and two parts derived
        from the weights built once, as decoding a latent does not need them rebuilt: the
        folded start (start_fold.py, where `foldable`) and the last stage's phase kernel.

        Loading a state dict or moving the decoder (`to`, `half`) rebuilds them; `train()`
        drops them and makes every weight trainable again. A write that bypasses both (through
        `.data`, or `copy_` into a weight) is not seen: prepare again after one. Training never
        uses a prepared decoder, so an optimiser step, an EMA or a partial freeze never meets
        a derived part (checkpoint.for_inference prepares the copies that decode)."""
        self.eval().requires_grad_(False)
        self.prepared = True
        self._build_inference_parts()
        return self

    def _build_inference_parts(self) -> None:
        """The parts `prepare_for_inference` keeps, from the weights as they are now."""
        self.start_fold = (StartFold.build(self.fc, self.bn, self.blocks[0], self.channels,
                                           START_SIZE) if self.foldable else None)
        last = self.to_rgb[0]
        if isinstance(last, PhaseTConv5):
            with torch.inference_mode(False), torch.no_grad():  # plain tensors, kept
                last.kept = last.phase_weights(_memory_format(last.weight))

    def train(self, mode: bool = True) -> DCGANDecoder:
        """nn.Module.train; training mode also undoes `prepare_for_inference`."""
        if mode and self.prepared:
            self.prepared, self.start_fold = False, None
            if isinstance(self.to_rgb[0], PhaseTConv5):
                self.to_rgb[0].kept = None
            self.requires_grad_(True)
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True) -> DCGANDecoder:  # noqa: ANN001 (torch's)
        """nn.Module._apply (to, half, cuda, ...), then the prepared parts built anew where a
        tensor moved or changed type: a `to` that changes nothing (a model switch moving a
        model already on its device) keeps them, as building them costs ~60 ms."""
        before = self._tensors_key()
        super()._apply(fn, recurse)
        if self.prepared and self._tensors_key() != before:
            self._build_inference_parts()
        return self

    def _tensors_key(self) -> list[tuple]:
        """Where and as what every weight and statistic is stored."""
        return [(t.data_ptr(), t.dtype, t.device) for t in (*self.parameters(), *self.buffers())]

    def draw(self, z: torch.Tensor, guide: torch.Tensor | None = None
             ) -> dict[str, torch.Tensor]:
        """"image" (B, 3, S, S) in [-1, 1] and, when guided, "uv" (B, 21, 2): the normalised
        keypoints (bone_maps.py) it decodes from z. It draws along them, or along `guide`
        (B, 21, 2) where given: the labels' keypoints in training (teacher forcing)."""
        stages = (*self.blocks, self.to_rgb)
        uv = None if self.keypoints is None else self.keypoints(z).view(-1, NUM_KEYPOINTS, 2)
        if self.crop is not None and guide is None:
            raise ValueError("a skeleton-guided decoder draws along given keypoints "
                             "(DVAE.decode projects the decoded skeleton)")
        maps = ([None] * len(stages) if not self.guided else
                finger_maps(uv if guide is None else guide,
                            [START_SIZE << i for i in range(len(stages))]))
        first = 0
        if self.start_fold is not None:  # FC, normalisation and the first stage as one matrix
            conv, _, relu = self.blocks[0]
            x = relu(self.start_fold(z, maps[0], _memory_format(conv.weight)))
            x = self._refined(0, x, maps)
            first = 1
        else:
            x = self.bn(self.fc(z).view(-1, self.channels, START_SIZE, START_SIZE))
        for i in range(first, len(stages)):
            x = self._refined(i, stages[i](self._with_maps(x, maps[i])), maps)
        return {"image": x} if uv is None else {"image": x, "uv": uv}

    @staticmethod
    def _with_maps(x: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        """x with the bone maps of its size appended as channels (where guided)."""
        if maps is None:
            return x
        maps = maps.to(x.dtype).contiguous(memory_format=_memory_format(x))  # mixed layouts
        return torch.cat([x, maps], 1)  # would make cat copy x

    def _refined(self, stage: int, x: torch.Tensor, maps: list) -> torch.Tensor:
        """x after doubling stage `stage`'s residual blocks (none on the last, RGB stage)."""
        if self.refine is None or stage >= len(self.refine):
            return x
        below = maps[stage + 1]
        below = None if below is None else below.to(x.dtype).contiguous(
            memory_format=_memory_format(x))
        for block in self.refine[stage]:
            x = block(x, below)
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The image alone (see `draw`)."""
        return self.draw(z)["image"]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last where `x` is stored so (run.channels_last, or load_model on a CPU), else
    contiguous."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _rebuild_after_load(decoder: DCGANDecoder, _incompatible_keys: object) -> None:
    """A state dict loaded into a prepared decoder: its derived parts follow the new weights."""
    if decoder.prepared:
        decoder._build_inference_parts()
