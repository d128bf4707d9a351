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


def test_after_a_broken_entry_the_next_entrys_problem_is_at_its_own_line(tmp_path: Path) -> None:
    """A file with a broken entry is salvaged entry by entry; the entries after it keep their own lines."""
    text = (Path(__file__).parent / "broken" / "category-unknown-unit.yaml").read_text(encoding="utf-8")
    broken_first = text.replace(
        "categories:\n",
        "categories:\n  - id: first\n    title: 坏的\n    clause: 附件1 第6项 目标2\n    quote: 坏\n"
        '    deadline: 30 mins\n    units: ["kind:street"]\n    lead: [office]\n',
    )
    (tmp_path / "two.yaml").write_text(broken_first, encoding="utf-8")
    problems = sorted(check(tmp_path), key=lambda p: int(p.split(":")[1]))
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["23", "31"], problems
    assert "not a duration" in problems[0] and "category litter: unknown unit or group 'kind:market'" in problems[1]
