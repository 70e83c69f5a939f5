"""handlatent-train's config: YAML -> dataclasses, one-line errors, --set overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from handlatent.training.config import (ConfigError, TrainConfig, dump_config, load_config,
                                        parse_yaml)

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = """\
model: {image_size: 64}
data: {train: DATA, batch_size: 4}
run: {steps: 3}
"""


@pytest.fixture
def minimal(tmp_path):
    (tmp_path / "data").mkdir()
    return write(tmp_path, MINIMAL.replace("DATA", str(tmp_path / "data")))


def error_of(path, sets=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, sets)
    line = str(info.value)
    assert "\n" not in line
    return line


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_validate(name, tmp_path):
    # data paths and the staged configs' starting checkpoints need not exist here
    cfg = load_config(CONFIGS / f"{name}.yaml",
                      [f"data.train={tmp_path}", "data.val=null", "run.init=null"])
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.lr > 0 and (cfg.run.steps or cfg.run.epochs)


def test_paper_config_has_the_papers_settings(tmp_path):
    cfg = load_config(CONFIGS / "paper-256.yaml", [f"data.train={tmp_path}"])
    assert cfg.model.image_size == 256
    # the fully specified latent of the paper's pose model, d = 64 split in halves
    assert (cfg.model.z_y1, cfg.model.z_y2, cfg.model.z_u) == (32, 32, 0)
    assert (cfg.model.decoder_upsample, cfg.model.decoder_norm) == ("tconv5", "batch")
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.factor) == (1e-4, "plateau", 0.1)
    assert cfg.data.batch_size == 32
    assert cfg.loss.w_cpose == 1000 * (256 / 64) ** 2 and cfg.loss.image_likelihood == "sigma"


def test_minimal_config_fills_defaults_and_round_trips(minimal, tmp_path):
    cfg = load_config(minimal)
    assert cfg.optim.lr == 1e-4 and cfg.optim.betas == (0.9, 0.999)
    assert cfg.model.image_size == 64 and cfg.run.steps == 3
    again = write(tmp_path, dump_config(cfg), "resolved.yaml")
    assert load_config(again) == cfg


def test_unknown_key_suggests_the_close_one(minimal):
    text = minimal.read_text().replace("run: {steps: 3}", "run: {steps: 3}\noptim: {lrr: 0.1}")
    minimal.write_text(text)
    assert error_of(minimal) == f"{minimal}: optim.lrr: unknown key (did you mean 'lr'?)"


def test_unknown_section_lists_the_valid_ones(minimal):
    minimal.write_text(minimal.read_text() + "training: {}\n")
    line = error_of(minimal)
    assert line.startswith(f"{minimal}: training: unknown key") and "optim" in line


def test_wrong_type_names_the_key_and_the_value(minimal):
    minimal.write_text(minimal.read_text() + "optim: {lr: fast}\n")
    assert error_of(minimal) == f"{minimal}: optim.lr: expected float, got 'fast'"


@pytest.mark.parametrize("text, key, expected", [
    ("run: {steps: 3.5}", "run.steps", "expected int, got 3.5"),
    ("run: {steps: 3, channels_last: 1}", "run.channels_last", "expected true/false, got 1"),
    ("run: {steps: 3, amp: fp32}", "run.amp", "expected one of 'none', 'bf16', 'fp16', got 'fp32'"),
    ("run: {steps: 3}\noptim: {betas: [0.9]}", "optim.betas", "expected a list of 2 floats"),
    ("run: {steps: 0}", "run.steps", "must be > 0, got 0"),
    ("run: {steps: 3, epochs: 2}", "run.steps", "give exactly one of run.steps and run.epochs"),
    ("run: {steps: 3, device: gpu}", "run.device", "expected auto, cpu, cuda or cuda:N"),
])
def test_value_errors(tmp_path, text, key, expected):
    path = write(tmp_path, f"model: {{image_size: 64}}\ndata: {{train: {tmp_path}}}\n{text}\n")
    line = error_of(path)
    assert line.startswith(f"{path}: {key}: {expected}"), line


def test_model_check_is_reported_on_its_section(minimal):
    minimal.write_text(minimal.read_text().replace("image_size: 64", "image_size: 100"))
    line = error_of(minimal)
    assert line.startswith(f"{minimal}: model: ") and "image_size" in line


def test_missing_required_value(tmp_path):
    path = write(tmp_path, "run: {steps: 3}\n")
    assert error_of(path) == f"{path}: data.train: missing required value (or give data.synthetic)"


def test_missing_data_path(minimal, tmp_path):
    text = minimal.read_text().replace(str(tmp_path / "data"), str(tmp_path / "nope"))
    minimal.write_text(text)
    assert error_of(minimal) == (f"{minimal}: data.train: no such file or directory: "
                                 f"'{tmp_path / 'nope'}'")


def test_missing_config_file(tmp_path):
    assert error_of(tmp_path / "absent.yaml") == f"{tmp_path / 'absent.yaml'}: no such file"


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "run:\n  steps: 3\n  log_interval: [1\n")
    line = error_of(path)
    assert line.startswith(f"{path}: line ") and "invalid YAML" in line


def test_duplicate_key_is_refused(minimal):
    minimal.write_text(minimal.read_text() + "run: {steps: 5}\n")
    line = error_of(minimal)
    assert line.startswith(f"{minimal}: run: line 4: duplicate key")


def test_exponent_without_dot_is_a_float():
    # YAML 1.1 (PyYAML) would read 1e-4 as the string '1e-4'
    assert parse_yaml("lr: 1e-4") == {"lr": 1e-4}


def test_set_overrides_are_parsed_and_validated(minimal):
    cfg = load_config(minimal, ["optim.lr=3e-4", "optim.betas=[0.5, 0.9]", "run.amp=bf16",
                                "model.z_u=0"])
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.5, 0.9)
    assert cfg.run.amp == "bf16" and cfg.model.z_u == 0
    assert error_of(minimal, ["optim.lr=fast"]) == \
        "--set optim.lr=fast: optim.lr: expected float, got 'fast'"
    assert error_of(minimal, ["optim.lrr=1"]) == \
        "--set optim.lrr=1: optim.lrr: unknown key (did you mean 'lr'?)"
    assert error_of(minimal, ["optim.lr"]).startswith("--set optim.lr: expected KEY=VALUE")
    assert error_of(minimal, ["model.image_size=100"]).startswith(
        "--set model.image_size=100: model: ")


def test_set_can_fix_a_missing_path(tmp_path):
    path = write(tmp_path, "data: {train: /nonexistent}\nrun: {steps: 1}\n")
    assert load_config(path, [f"data.train={tmp_path}"]).data.train == str(tmp_path)


# -------------------------------------------------------------------------- the CLI, end to end

CLI_CASES = {
    "unknown_key": ("run: {steps: 3, stpes: 4}\n", [],
                    "run.stpes: unknown key (did you mean 'steps'?)"),
    "wrong_type": ("optim: {lr: fast}\n", [], "optim.lr: expected float, got 'fast'"),
    "broken_yaml": ("run: {steps: 3\n", [], "invalid YAML"),
    "missing_file": (None, [], "no such file"),
    "bad_set": ("run: {steps: 3}\n", ["--set", "run.seed=abc"],
                "run.seed: expected int, got 'abc'"),
    # a dataset spec gets its reader's message, not "no such file or directory: 'rhd:...'"
    "train_spec": ("run: {steps: 3}\n", ["--set", "data.train=rhd:/nope/RHD?split=training"],
                   "data.train: cannot open dataset 'rhd:/nope/RHD?split=training': "
                   "/nope/RHD: no such directory"),
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Run every CLI error case at once (in parallel: each starts Python and imports torch)."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "data").mkdir()
    procs = {}
    for name, (text, extra, _) in CLI_CASES.items():
        path = tmp / f"{name}.yaml"
        if text is not None:
            path.write_text(f"model: {{image_size: 64}}\ndata: {{train: {tmp / 'data'}}}\n" + text)
        procs[name] = (path, subprocess.Popen(
            [sys.executable, "-m", "handlatent.training.cli", "--config", str(path),
             "--out", str(tmp / "out" / name), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for name, (path, p) in procs.items():
        out, err = p.communicate(timeout=120)
        results[name] = (path, p.returncode, out, err)
    return results


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_config_error_is_one_line_exit_2(cli_results, name):
    path, returncode, out, err = cli_results[name]
    expected = CLI_CASES[name][2]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("handlatent-train: ")
    assert expected in lines[0]
    if name == "bad_set":
        assert "--set run.seed=abc" in lines[0]
    elif name.endswith("_spec"):
        assert "no such file or directory" not in lines[0]
    else:
        assert str(path) in lines[0]
    assert returncode == 2


# ------------------------------------------------------------------ bundled configs, by name

def test_bundled_configs_are_found_by_name_or_path_from_any_folder(tmp_path, monkeypatch):
    from handlatent.training.config_files import resolve_config

    monkeypatch.chdir(tmp_path)               # not the checkout: names are package data
    smoke = (CONFIGS / "smoke.yaml").resolve()
    assert resolve_config("smoke").resolve() == smoke
    assert resolve_config("smoke.yaml").resolve() == smoke
    assert resolve_config(str(smoke)) == smoke
    assert resolve_config("synth-128-stream").resolve() == CONFIGS.resolve() / "synth-128-stream.yaml"
    own = write(tmp_path, "run: {steps: 1}\n", "smoke.yaml")  # a file of that name wins
    assert resolve_config("smoke.yaml") == Path("smoke.yaml") and own.is_file()
    with pytest.raises(ConfigError) as info:
        resolve_config("smoek")
    message = str(info.value)
    assert message.startswith("smoek: no such file") and "own-data-64" in message
    assert "--list-configs" in message and "\n" not in message


def test_list_configs_names_each_bundled_config_with_one_line(capsys):
    from handlatent.training.cli import main

    assert main(["--list-configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert [line.split()[0] for line in lines] == names
    for line in lines:
        description = line.split(None, 1)[1]
        assert 20 <= len(description) <= 100, line   # each config's first line describes it
    own = next(line for line in lines if line.startswith("own-data-64 "))
    assert "own data" in own


def test_own_data_config_trains_on_a_given_folder(tmp_path):
    cfg = load_config(CONFIGS / "own-data-64.yaml", [f"data.train={tmp_path}"])
    assert cfg.model.image_size == 64 and cfg.data.train == str(tmp_path)
    assert cfg.run.steps <= 1000 and cfg.data.synthetic is not None   # short; runs without data
