"""Training configuration: YAML files validated into nested dataclasses.

A config file mirrors `TrainConfig` below, one section per dataclass:

    model: {image_size: 128, ...}     # handlatent.model.ModelConfig
    loss:  {beta: 0.01, ...}          # handlatent.model.objective.LossConfig
    data:  {train: data/synth-128, batch_size: 32, ...}
    optim: {lr: 1.0e-4, schedule: plateau, ...}
    run:   {steps: 20000, val_interval: 500, ...}

Every key is checked against the dataclass fields: an unknown key (with a "did you mean"
suggestion), a value of the wrong type, a missing required value or a path that does not exist
raises `ConfigError`, which the CLI prints as one line naming the source and the key,

    configs/x.yaml: optim.lr: expected float, got 'fast'

`--set optim.lr=3e-4` overrides are parsed as YAML scalars and validated the same way; an error
in one of them names the override instead of the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from handlatent.data import CROPPING_READERS
from handlatent.data.augment import AugmentConfig
from handlatent.model import ModelConfig
from handlatent.model.objective import LossConfig


class ConfigError(ValueError):
    """A config problem. `str(err)` is one line: `source: key: message`."""

    def __init__(self, message: str, key: str = "", source: str = ""):
        self.message, self.key, self.source = message, key, source
        super().__init__(self._line())

    def _line(self) -> str:
        return ": ".join(part for part in (self.source, self.key, self.message) if part)

    def located(self, source: str) -> "ConfigError":
        return ConfigError(self.message, self.key, source)


def _path(kind: str) -> dict:
    """Field metadata: the value is a path that must exist (`file`, `dir`, `any`, or `dataset`:
    a path with an optional `kind:` prefix, as handlatent.data.open_dataset reads)."""
    return {"path": kind}


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@dataclass
class SynthDataConfig:
    """A synthetic dataset the trainer renders itself: once into `<run dir>/synthetic-data`, or
    with `fresh` anew every epoch as the loader reads it (handlatent.data.synthetic_stream)."""

    count: int = 256  # hands (per epoch with fresh)
    seed: int = 0
    # Render each epoch's hands as they are read, from (seed, epoch, index): no files, and no
    # hand seen twice. The loader's workers (data.workers) do the rendering.
    fresh: bool = False
    # Give every hand its content twin (handlatent.synth.twins), for the content-twins recipe.
    twins: bool = False


@dataclass
class DatasetEntry:
    """One dataset of a mixture (`data.train` given as a list)."""

    path: str = field(metadata=_path("dataset"))
    # Each epoch draws round(weight x size) samples of this dataset: 1 takes each once, 2 twice,
    # 0.5 a fresh random half every epoch. Batches hold the datasets in those proportions.
    weight: float = 1.0
    # false: use only the images (the semi-supervised terms): items get labelled = False.
    labelled: bool = True


@dataclass
class DataConfig:
    # A dataset for handlatent.data.open_dataset: a directory written by handlatent-synth, or
    # KIND:PATH (e.g. synth:data/x, "rhd:/data/RHD_published_v2?split=training"), or a list of
    # {path, weight, labelled} entries to train on a mixture. Relative paths are relative to
    # the current directory. Leave it empty and give `synthetic` to render a dataset on the fly.
    train: str | list[DatasetEntry] | None = field(default=None, metadata=_path("dataset"))
    # Separate validation set; without one, `val_count` (or else `val_fraction`) of the training
    # set is held out (a fixed split, the same for every seed).
    val: str | None = field(default=None, metadata=_path("dataset"))
    val_fraction: float = 0.05
    val_count: int | None = None
    synthetic: SynthDataConfig | None = None
    # Global batch size: split evenly over the processes of a distributed run.
    batch_size: int = 32
    # DataLoader worker processes (per training process); 0 loads in the training process.
    workers: int = 1
    # Augmentation of real photographs (rhd:, stb:, freihand:) while cropping: scale, shift, in-plane
    # rotation (labels turned with it), hue; reproducible per (run.seed, epoch, sample).
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    # Clip the global gradient norm to this value (null: no clipping).
    grad_clip: float | None = None
    # Linear warm-up from 0 over this many steps, then the schedule below.
    warmup_steps: int = 0
    # plateau: multiply the lr by `factor` when the validation loss has not improved (by a
    #          relative `threshold`) for more than `patience` validations in a row (torch's
    #          ReduceLROnPlateau rule; the paper's x0.1 on plateau).
    # cosine:  cosine decay from lr to `min_lr` over the run.
    # step:    multiply by `factor` every `step_size` steps.
    # constant: no schedule.
    schedule: Literal["plateau", "cosine", "step", "constant"] = "plateau"
    factor: float = 0.1
    patience: int = 5
    threshold: float = 1e-3
    step_size: int = 10000
    min_lr: float = 1e-7


@dataclass
class RunConfig:
    # Length of the run: `steps` optimizer steps, or `epochs` passes over the training set.
    steps: int | None = None
    epochs: float | None = None
    log_interval: int = 20  # steps between metrics.jsonl lines
    val_interval: int = 500  # steps between validations (also at the end)
    val_batches: int | None = None  # cap the batches per validation (null: the whole val set)
    ckpt_interval: int = 1000  # steps between last.pt writes (also at the end and on a signal)
    image_count: int = 8  # samples in the TensorBoard image grids
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    threads: int | None = None  # torch CPU threads (null: all cores, shared between processes)
    # Stop (saving last.pt, like a signal) after this many minutes of training, counted from
    # this start or resume. `time_clock` says which clock: `wall`, or `cpu` (this process's CPU
    # time: equal budgets for runs compared on a machine that other jobs share; use workers: 0
    # so the data loading is counted too).
    time_budget_min: float | None = None
    time_clock: Literal["wall", "cpu"] = "wall"
    # torchvision ResNet-18 weights (resnet18-*.pth) to initialise the image encoder with.
    init_encoder: str | None = field(default=None, metadata=_path("file"))
    # A handlatent checkpoint (e.g. an earlier run's best.pt) whose weights start this run:
    # fine-tuning with a fresh optimizer and schedule. Its model config must equal `model`.
    init: str | None = field(default=None, metadata=_path("file"))
    # exact:  run.init's model config must equal `model`; every weight is taken.
    # shapes: take each tensor whose name and shape match this model's (the rest keep their
    #         fresh initialisation): e.g. a trained encoder and pose networks under a new image
    #         decoder or image size. The trainer lists what it left fresh.
    # grow:   like shapes, and tensors whose shapes differ are grown (handlatent/model/growth.py):
    #         a wider image decoder, new residual blocks or another bone-map guide start out
    #         drawing what run.init's decoder drew.
    init_match: Literal["exact", "shapes", "grow"] = "exact"


@dataclass
class DecoderStageConfig:
    """The decoder stage (training/decoder_stage.py): with `enabled`, the image encoder and the
    pose networks are frozen and only the image decoder learns, from z drawn from the frozen
    image posterior, on these image terms (each a per-sample mean, averaged over the batch)."""

    enabled: bool = False
    # Share of each batch drawn along the labels' 2-D keypoints instead of the decoded skeleton's
    # projection (teacher forcing): the convolutions learn to paint along true bones.
    teacher: float = 0.5
    w_l1: float = 1.0  # absolute error, hand pixels (1 + loss.w_hand) times
    w_mse: float = 0.0  # squared error, weighted the same way
    w_ssim: float = 0.0  # 1 - SSIM (window 7), hand pixels weighted the same way
    w_ffl: float = 0.0  # focal frequency loss
    w_perceptual: float = 0.0  # random-weight CNN features (handlatent.model.image_losses)
    # A skeleton-guided decoder's crop head: its projected keypoints against the labels' (mean
    # squared distance in the [-1, 1] frame) and its side against the labels' (cross-entropy).
    w_uv: float = 10.0
    w_side: float = 1.0
    # Steps (batch 256) that train the crop head alone on the cached posteriors before the loop,
    # so that the decoder draws along projected skeletons that are in place from its first step.
    head_steps: int = 0
    # Encode a fixed training set (synthetic folders) once and keep its posteriors in this file
    # (null: <run dir>/posteriors.pt; reused when it matches): the frozen encoder then costs
    # nothing per step. false: encode every batch (streamed or augmented data).
    cache_posteriors: bool = True
    posterior_file: str | None = None


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    decoder: DecoderStageConfig = field(default_factory=DecoderStageConfig)


def _check_semantics(cfg: TrainConfig) -> None:
    """Rules that involve more than one field's type."""
    r, d, o = cfg.run, cfg.data, cfg.optim
    if (r.steps is None) == (r.epochs is None):
        raise ConfigError("give exactly one of run.steps and run.epochs", "run.steps")
    positive = {
        "run.steps": r.steps, "run.epochs": r.epochs, "run.log_interval": r.log_interval,
        "run.val_interval": r.val_interval, "run.ckpt_interval": r.ckpt_interval,
        "run.val_batches": r.val_batches, "run.threads": r.threads,
        "run.time_budget_min": r.time_budget_min,
        "data.batch_size": d.batch_size, "data.val_count": d.val_count,
        "optim.lr": o.lr, "optim.step_size": o.step_size,
        "data.synthetic.count": d.synthetic.count if d.synthetic else None,
    }
    for key, value in positive.items():
        if value is not None and value <= 0:
            raise ConfigError(f"must be > 0, got {value!r}", key)
    for key, value in {"data.workers": d.workers, "optim.warmup_steps": o.warmup_steps,
                       "optim.patience": o.patience, "run.image_count": r.image_count,
                       "optim.weight_decay": o.weight_decay, "optim.min_lr": o.min_lr}.items():
        if value < 0:
            raise ConfigError(f"must be >= 0, got {value!r}", key)
    if not 0.0 <= cfg.decoder.teacher <= 1.0:
        raise ConfigError(f"must be in [0, 1], got {cfg.decoder.teacher!r}", "decoder.teacher")
    if not 0.0 < o.factor <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {o.factor!r}", "optim.factor")
    if not 0.0 < d.val_fraction < 1.0:
        raise ConfigError(f"must be in (0, 1), got {d.val_fraction!r}", "data.val_fraction")
    if d.train is None and d.synthetic is None:
        raise ConfigError("missing required value (or give data.synthetic)", "data.train")
    if isinstance(d.train, list):
        if not d.train:
            raise ConfigError("an empty list: give at least one dataset", "data.train")
        for i, entry in enumerate(d.train):
            if not entry.weight > 0:
                raise ConfigError(f"must be > 0, got {entry.weight!r}", f"data.train[{i}].weight")
        if d.val is None and d.val_count is not None:
            raise ConfigError("with a list of training sets, hold out data.val_fraction of each "
                              "(or give data.val)", "data.val_count")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", r.device):
        raise ConfigError(f"expected auto, cpu, cuda or cuda:N, got {r.device!r}", "run.device")


# --------------------------------------------------------------------------------------------
# Generic validation of a plain dict against a dataclass
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_type_name(args[0])}s"
        return f"a list of {_type_name(args[0])}s" if args else "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true/false", str: "string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and return it in that type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    wrong = ConfigError(f"expected {_type_name(tp)}, got {_shown(value)}", key)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise wrong
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _convert(value, arm, key)
            except ConfigError as err:
                errors.append((arm, err))
        # One non-null arm, or one of the value's kind (a list for list[...]): its own message
        # is the most precise (e.g. a nested unknown key).
        kind = [err for arm, err in errors if _same_kind(value, arm)]
        raise errors[0][1] if len(errors) == 1 else kind[0] if len(kind) == 1 else wrong
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise wrong
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong
        return from_dict(tp, value, key)
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise wrong
            items = [_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_type = args[0] if args else Any
            items = [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise wrong
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong
    if tp is str or tp is Path:
        if isinstance(value, str):
            return tp(value)
        raise wrong
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise wrong


def _same_kind(value: Any, tp: Any) -> bool:
    """Whether `value` is the container kind of annotation `tp` (list/tuple, mapping)."""
    origin = typing.get_origin(tp) or tp
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return False


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a plain dict, checking every key and value."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in data:
        if not isinstance(name, str) or name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            valid = "" if hint else " (valid: " + ", ".join(fields) + ")"
            raise ConfigError(f"unknown key{hint}{valid}", key)
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError("missing required value", key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # a __post_init__ check of the dataclass itself
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(message, prefix) from None


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain YAML/checkpoint-safe data (dicts, lists, numbers, strings)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _check_paths(obj: Any, prefix: str = "") -> None:
    """Every field marked with `_path(...)` metadata must name an existing file or directory."""
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name
        kind = f.metadata.get("path")
        if kind and isinstance(value, (str, Path)):
            p = Path(value)
            # KIND:PATH, or KIND:PATH?options (a reader's options, e.g. ?split=test)
            prefixed = re.match(r"^([a-z][a-z0-9_]+):([^?]+)(?:\?.*)?$", str(value))
            if kind == "dataset" and prefixed and not p.exists():
                if prefixed.group(1) in CROPPING_READERS:
                    continue  # the reader checks its own layout when the run opens it
                p = Path(prefixed.group(2))
            if not p.exists():
                raise ConfigError(f"no such file or directory: '{value}'", key)
            if kind == "file" and not p.is_file():
                raise ConfigError(f"expected a file, got a directory: '{value}'", key)
            if kind == "dir" and not p.is_dir():
                raise ConfigError(f"expected a directory: '{value}'", key)
        if dataclasses.is_dataclass(value):
            _check_paths(value, key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _check_paths(item, f"{key}[{i}]")


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`) and refuses duplicate
    keys instead of silently keeping the last one."""


_Loader.yaml_implicit_resolvers = {
    k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(f"line {line}: duplicate key (first at line {seen[key]})", str(key))
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{where}invalid YAML: {err.problem or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {str(err).splitlines()[0]}") from None


def read_yaml_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read: {err}", source=str(path)) from None
    try:
        data = parse_yaml(text)
    except ConfigError as err:
        raise err.located(str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of sections, got {type(data).__name__}",
                          source=str(path))
    return data


# --------------------------------------------------------------------------------------------
# Loading: file + overrides -> TrainConfig
# --------------------------------------------------------------------------------------------


def apply_override(data: dict, item: str) -> str:
    """Apply one `key.sub=value` override to the plain dict `data`; return the dotted key."""
    source = f"--set {item}"
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError("expected KEY=VALUE, e.g. optim.lr=3e-4", source=source)
    try:
        value = parse_yaml(text) if text.strip() else None
    except ConfigError as err:
        raise err.located(source) from None
    *parents, last = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"is not a section (it holds {_shown(child)})",
                              ".".join(parents[: i + 1]), source)
        node = child
    node[last] = value
    return key


def build_config(data: dict, source: str = "",
                 overrides: dict[str, str] | None = None) -> TrainConfig:
    """Validate the plain dict `data` into a TrainConfig.

    `overrides` maps dotted keys set by `--set` to their source text, so that an error in one of
    them names the override and not the file.
    """
    overrides = overrides or {}
    try:
        cfg = from_dict(TrainConfig, data)
        _check_semantics(cfg)
        _check_paths(cfg)
    except ConfigError as err:
        blame = source
        for key, item_source in overrides.items():
            inner, outer = (err.key, key) if len(err.key) >= len(key) else (key, err.key)
            if inner == outer or inner.startswith(outer + ".") or inner.startswith(outer + "["):
                blame = item_source  # the override's key, a key inside it, or its section
        raise err.located(blame) from None
    return cfg


def load_config(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config, apply `--set` overrides, validate. Raises ConfigError (one line)."""
    data = read_yaml_file(path)
    overrides = {}
    for item in sets:
        overrides[apply_override(data, item)] = f"--set {item}"
    return build_config(data, str(path), overrides)


def dump_config(cfg: TrainConfig, header: str = "") -> str:
    """The config as YAML that `load_config` reads back to an equal TrainConfig."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + text
