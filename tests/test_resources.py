"""What ships inside the package: the bundled model and the example hands, found through
importlib.resources in this checkout and in a wheel built from it (installed elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlatent.checkpoint import CheckpointError, bundled_model, resolve_checkpoint
from handlatent.resources import example_images
from handlatent.synth.examples import SIZE, render_examples

ROOT = Path(__file__).resolve().parents[1]
# What a wheel is built from (pyproject.toml's packages, package-dir and readme).
SOURCES = ("pyproject.toml", "README.md", "handlatent", "app", "training", "assets")
CONFIGS = ROOT / "training" / "configs"


def test_bundled_model_is_the_one_pt_file_in_assets_models() -> None:
    models = list((ROOT / "assets" / "models").glob("*.pt"))
    assert len(models) == 1 and bundled_model() == models[0].resolve()
    assert resolve_checkpoint(None) == bundled_model()


@pytest.mark.parametrize("names", [[], ["a.pt", "b.pt"]])
def test_no_or_several_bundled_models_are_one_line_errors(tmp_path, monkeypatch, names) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr("handlatent.checkpoint.asset_folder", lambda _name: tmp_path)
    with pytest.raises(CheckpointError) as error:
        resolve_checkpoint(None)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path) in message and "--checkpoint" in message
    assert all(name in message for name in names)
    assert resolve_checkpoint("given.pt") == Path("given.pt")   # a given checkpoint is not looked up


def test_examples_are_what_the_renderer_makes_of_the_fixed_seed() -> None:
    shipped = example_images()
    rendered = render_examples()
    assert [p.name for p in shipped] == list(rendered) and 6 <= len(shipped) <= 8
    assert len({name.split("-", 1)[1] for name in rendered}) == len(rendered)  # all poses differ
    for path in shipped:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        assert pixels.shape == (SIZE, SIZE, 3)
        diff = np.abs(pixels.astype(int) - rendered[path.name].astype(int))
        assert diff.mean() < 0.5, path          # the same picture (numba may round differently)
        assert pixels.std() > 20                # a hand on a background, not a flat field


def _build_wheel(tmp_path: Path) -> Path:
    """`pip wheel` of a copy of the sources (offline: no index, no build isolation)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "dist"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                             "--no-build-isolation", "--no-index", "-q", "-w", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = out.glob("handlatent-*.whl")
    return wheel


def _run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Python with the unpacked wheel first on the path (not this checkout)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("HANDLATENT_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def test_a_wheel_holds_the_model_and_examples_and_finds_them_installed(tmp_path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    model = bundled_model()
    assert f"handlatent/assets/models/{model.name}" in names
    assert {f"handlatent/assets/examples/{p.name}" for p in example_images()} <= names

    site = tmp_path / "site"          # a wheel installs by unpacking it
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import handlatent, handlatent.checkpoint as c, handlatent.resources as r; "
             "print(handlatent.__file__); print(c.bundled_model()); "
             "print(*r.example_images(), sep='\\n')")
    result = _run_installed(site, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert len(lines) == 2 + len(example_images())
    assert all(Path(line).is_relative_to(site) and Path(line).is_file() for line in lines), lines
    assert Path(lines[1]).stat().st_size == model.stat().st_size

    # The training configs are package data: found by name from any folder, and listed.
    probe = ("from handlatent.training.config import load_config; "
             "from handlatent.training.config_files import resolve_config; "
             "print(resolve_config('smoke'), resolve_config('synth-128-stream.yaml')); "
             "print(load_config(resolve_config('smoke')).model.image_size)")
    result = _run_installed(site, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    paths, size = result.stdout.splitlines()
    assert all(Path(p).is_relative_to(site / "handlatent" / "training" / "configs")
               for p in paths.split()) and size == "64"
    result = _run_installed(site, tmp_path, "-m", "handlatent.training.cli", "--list-configs")
    assert result.returncode == 0 and "own-data-64 " in result.stdout, result.stderr
    assert {f"handlatent/training/configs/{p.name}" for p in CONFIGS.glob("*.yaml")} <= names

    # The window opens on the first example from the installed wheel (nothing on stderr: a
    # missing or unreadable example would be reported there).
    shot = tmp_path / "shot.png"
    result = _run_installed(site, tmp_path, "-m", "handlatent.app.cli", "--device", "cpu",
                            "--screenshot", str(shot))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert shot.is_file()

    # A wheel without the model: one line naming what is missing, no traceback.
    for pt in (site / "handlatent" / "assets" / "models").glob("*.pt"):
        pt.unlink()
    image = example_images()[0]
    result = _run_installed(site, tmp_path, "-m", "handlatent.estimate_cli", str(image),
                            "--out", str(tmp_path / "poses.json"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "no bundled model" in lines[0] and str(site) in lines[0]
