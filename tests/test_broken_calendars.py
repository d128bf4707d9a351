"""A corpus of broken calendar files: each must be refused with the line its `# expect:` header names."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from calendars.loader import check

CORPUS = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_each_broken_file_is_refused_at_its_line(tmp_path: Path, path: Path) -> None:
    expected = re.match(r"# expect: (\d+): (.+)", path.read_text(encoding="utf-8").splitlines()[0])
    assert expected, f"{path} has no '# expect: LINE: message' header"
    line, fragment = int(expected.group(1)), expected.group(2)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    problems = check(tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{copy}:{line}: ") and fragment in problems[0], problems[0]


def test_the_corpus_covers_what_the_issue_lists() -> None:
    names = {p.stem for p in CORPUS}
    assert {
        "unknown-unit",
        "unknown-field",
        "invalid-rrule",
        "invalid-apprise-url",
        "missing-clause",
        "duplicate-id",
        "quota-zero",
        "never-met",
    } <= names
