"""What users read speaks to them: no issue numbers or words only the authors know, in the docs,
the code's messages and help, the presets and tables, and the tests (all of them ship in the repo)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("ablations", "analysis", "models", "docs", "tests", "scripts", ".ci")
FILES = ("README.md", "CHANGELOG.md", "ablate.py", "pyproject.toml")
SUFFIXES = (".py", ".md", ".yaml", ".yml", ".sh", "")
INSIDER = re.compile(
    r"\bissues? #?\d+|\(#\d+\)|#\d+'s|issue protocol|old loader|before this issue|the issue's", re.IGNORECASE
)


def shipped() -> list[Path]:
    files = [ROOT / f for f in FILES if (ROOT / f).exists()]
    for folder in FOLDERS:
        text = (p for p in (ROOT / folder).rglob("*") if p.suffix in SUFFIXES)
        files += [p for p in text if p.is_file() and "__pycache__" not in p.parts]
    return [p for p in files if p != Path(__file__).resolve()]


def test_no_issue_numbers_or_insider_words():
    found = []
    for path in shipped():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if INSIDER.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "\n".join(found)
