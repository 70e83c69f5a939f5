"""A fresh run's starting weights: run.init_encoder (torchvision's ResNet-18) and run.init (a
handlatent checkpoint, transplanted by handlatent.model.surgery)."""

from __future__ import annotations

from handlatent.checkpoint import CheckpointError, load_model
from handlatent.model import DVAE, ModelConfig, load_torchvision_resnet18
from handlatent.model.growth import grow_state
from handlatent.model.surgery import transplant
from handlatent.training.config import ConfigError, TrainConfig
from handlatent.training.run_dir import say


def initialise(model: DVAE, cfg: TrainConfig, verbose: bool) -> None:
    """Load run.init_encoder and run.init (with run.init_match "shapes", the tensors that fit,
    layers given new inputs widened at zero; "grow": handlatent.model.growth) into `model`; say
    what was fresh when `verbose`."""
    if cfg.run.init_encoder:
        load_torchvision_resnet18(model.image_encoder, cfg.run.init_encoder)
    if cfg.run.init and cfg.run.init_match == "grow":
        source = init_weights(cfg.run.init, cfg.model, "shapes")
        state, fresh = grow_state(model, source.state_dict(), source.image_decoder.guided)
        model.load_state_dict(state, strict=False)
        if verbose:
            parts = sorted({".".join(name.split(".")[:2]) for name in fresh})
            say(f"run.init: grown from {cfg.run.init}; fresh: {', '.join(parts) or 'none'}")
    elif cfg.run.init:
        source = init_weights(cfg.run.init, cfg.model, cfg.run.init_match).state_dict()
        done = transplant(model, source, strict=cfg.run.init_match == "exact")
        if verbose and done.grown:
            say(f"run.init: {len(done.grown)} tensors given new inputs, at zero: "
                f"{', '.join(done.grown)}")
        if verbose and done.fresh:
            say(f"run.init: {len(done.taken)} of {len(model.state_dict())} tensors from "
                f"{cfg.run.init}; fresh where they differ: {', '.join(done.fresh)}")


def init_weights(path: str, config: ModelConfig, match: str = "exact") -> DVAE:
    """The model stored at `path` (run.init), refused in one line unless its config is `config`
    (with match "shapes": unless its latent layout is `config`'s)."""
    try:
        model = load_model(path, device="cpu")
    except CheckpointError as error:
        raise ConfigError(str(error), "run.init") from None
    if match == "shapes" and model.layout != config.layout:
        raise ConfigError(f"{path}: its latent layout {model.layout.to_dict()} differs from "
                          f"this run's {config.layout.to_dict()}", "run.init")
    if match == "exact" and model.config != config:
        raise ConfigError(f"{path}: its model {model.config.to_dict()} differs from this run's "
                          f"{config.to_dict()}", "run.init")
    return model
