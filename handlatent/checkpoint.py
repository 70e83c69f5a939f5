"""Safe dVAE checkpoints: tensors and plain data only, written atomically, loaded without code.

Checkpoints are shared between people, so loading one must never run code: files are read with
`torch.load(weights_only=True)` and anything else is refused with a one-line CheckpointError.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from handlatent.model import DVAE, LatentLayout, ModelConfig, build_model
from handlatent.resources import MODELS_FOLDER, asset_folder

FORMAT = "handlatent-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "layout", "state_dict", "extra")
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype)


class CheckpointError(ValueError):
    """A file that is not a loadable handlatent checkpoint; the message names file and problem."""


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError unless `value` nests only dicts, lists, tuples, tensors and scalars."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint {where}: key {key!r} is not a str or int")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"checkpoint {where} is a {type(value).__name__}; only tensors, dicts, "
                        f"lists and str/int/float/bool/None can be saved (convert numpy arrays "
                        f"with torch.from_numpy)")


def save_checkpoint(path: str | os.PathLike, model: DVAE, *,
                    extra: Mapping[str, Any] | None = None, half: bool = False) -> None:
    """Write `model` (config, layout, weights) and `extra` plain data to `path` atomically.

    `half=True` stores floating-point weights as float16 for shipping; `extra` holds e.g. the
    training step, data statistics or an optimizer state dict. A crash never leaves a partial
    file at `path` (temp file in the same directory, fsync, os.replace).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    checkpoint = {"format": FORMAT, "format_version": FORMAT_VERSION,
                  "model_config": model.config.to_dict(), "layout": model.layout.to_dict(),
                  "state_dict": state, "extra": dict(extra or {})}
    _check_plain(checkpoint["extra"], "extra")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _load_problem(error: Exception) -> str:
    """A one-line description of why torch.load(weights_only=True) failed."""
    text = str(error)
    code = re.search(r"GLOBAL ([\w.]+)", text)
    if code:
        return (f"refused: loading it would run code ({code.group(1)}); checkpoints may hold "
                f"only tensors and plain data")
    if isinstance(error, EOFError) or "central directory" in text:
        return "truncated or corrupted file"
    return "not a PyTorch checkpoint file"


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint written by `save_checkpoint`, on the CPU, without running code.

    Raises CheckpointError (one line naming the file and the problem) for a missing, foreign,
    truncated, code-carrying or wrong-format file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types for foreign files
        raise CheckpointError(f"{path}: {_load_problem(error)}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a handlatent checkpoint (no format '{FORMAT}')")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version "
                              f"{checkpoint.get('format_version')!r} (this version reads "
                              f"{FORMAT_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> DVAE:
    """The dVAE stored at `path`, ready for inference on `device` (`for_inference`: its image
    decoder frozen until `.train()`; "auto": CUDA if available, else CPU).

    Half-precision weights are upcast to float32.
    """
    checkpoint = load_checkpoint(path)
    try:
        config = ModelConfig.from_dict(checkpoint["model_config"])
        layout = LatentLayout.from_dict(checkpoint["layout"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{os.fspath(path)}: invalid model_config or layout ({error})") \
            from error
    if layout != config.layout:
        raise CheckpointError(f"{os.fspath(path)}: layout {layout} does not match model_config")
    model = build_model(config)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as error:
        problem = " ".join(str(error).split())[:300]
        raise CheckpointError(f"{os.fspath(path)}: state_dict does not fit model_config "
                              f"({problem})") from error
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return for_inference(model, device)


def for_inference(model: DVAE, device: str | torch.device) -> DVAE:
    """`model` in eval mode on `device`, its weights channels_last on a CPU, where oneDNN's
    convolutions run 10-30 % faster so, and its image decoder prepared for inference: its
    weights frozen and the parts derived from them built once (docs/model.md, "Decode cost";
    `DCGANDecoder.prepare_for_inference`). Training takes the model as `build_model` gives it."""
    model = model.to(device).eval()
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    model.image_decoder.prepare_for_inference()
    return model


def bundled_model() -> Path:
    """The bundled model: the one .pt file shipped in handlatent.assets' models/ folder, whatever
    its name (so a retrained model can replace it without code changes).

    Raises CheckpointError (one line) when that folder holds no .pt file or several.
    """
    folder = asset_folder(MODELS_FOLDER)
    models = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    if len(models) == 1:
        return models[0]
    if not models:
        raise CheckpointError(f"no --checkpoint given and there is no bundled model (no .pt file "
                              f"in {folder}; train one or pass --checkpoint MODEL.pt)")
    raise CheckpointError(f"no --checkpoint given and the bundled models folder {folder} holds "
                          f"{len(models)} models ({', '.join(m.name for m in models)}): keep one "
                          f"or pass --checkpoint MODEL.pt")


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """The checkpoint a command opens: the one given, else the bundled model.

    Raises CheckpointError (one line) when none is given and the bundled model is not there.
    """
    if checkpoint is not None:
        return Path(checkpoint)
    path = bundled_model()
    if not path.is_file():
        raise CheckpointError(f"no --checkpoint given and the bundled model {path} is not there "
                              f"(train it or pass --checkpoint MODEL.pt)")
    return path
