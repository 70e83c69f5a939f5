"""The docs stand alone: every `*.md` file that the repository's text cites is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a user gets: the folders of the checkout and the wheel, and the top-level README.
CITING = ("README.md", "docs", "handlatent", "app", "training", "assets", "tests", "scripts")
MD_REFERENCE = re.compile(r"(?<![\w./:-])([\w./-]*[\w-]\.md)\b")


def _citing_files() -> list[Path]:
    files = []
    for name in CITING:
        path = ROOT / name
        files += [path] if path.is_file() else [
            p for p in path.rglob("*") if p.suffix in (".md", ".py") and "__pycache__" not in p.parts]
    return [f for f in files if f != Path(__file__).resolve()]  # this file cites missing ones


def dangling_references(text: str, folder: Path) -> list[str]:
    """The `*.md` names in `text` found neither beside the citing file (`folder`) nor from the
    repository's root."""
    return sorted({ref for ref in MD_REFERENCE.findall(text)
                   if not (folder / ref).is_file() and not (ROOT / ref).is_file()})


def test_the_reference_finder_catches_a_missing_file(tmp_path) -> None:
    missing = "design" + ".md"  # spelt in two parts: this file cites no missing page itself
    text = f"see docs/conventions.md §4, {missing} and (../assets/models/README.md)"
    assert dangling_references(text, ROOT / "docs") == [missing]


def test_every_cited_md_file_is_in_the_repository() -> None:
    problems = [f"{path.relative_to(ROOT)}: {ref}" for path in _citing_files()
                for ref in dangling_references(path.read_text(encoding="utf-8"), path.parent)]
    assert not problems, "cited but not in the repository: " + "; ".join(problems)
