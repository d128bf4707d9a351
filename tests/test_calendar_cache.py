"""The compiled programme (calendars/compiled.py): parsed once per content, and never trusted over a changed file.

Every load here is a real parse of the shipped calendars or a real read of the kept file; the counting wrappers only
count calls to the parser and to apprise, they change nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import apprise
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from calendars import compiled, loader
from calendars.loader import CalendarError, LineDict, Program
from calendars.recurrence import expand
from flows import steps
from flows.cli import app
from store import db
from store.models import Occurrence

REPO = Path(__file__).resolve().parent.parent
WORKDAYS_2027 = """\
year: 2027
source: 国办发明电〔2026〕9号
holidays: [2027-01-01, 2027-10-04]
workdays: [2027-02-14]
"""
runner = CliRunner()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the YAML parser reads, in order."""
    seen: list[Path] = []
    real = loader._parse

    def counting(path: Path, model: Any) -> Any:
        seen.append(path)
        return real(path, model)

    monkeypatch.setattr(loader, "_parse", counting)
    return seen


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL apprise is asked about."""
    urls: list[str] = []
    real = apprise.Apprise.instantiate

    def counting(url: Any, *args: Any, **kwargs: Any) -> Any:
        urls.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(apprise.Apprise, "instantiate", staticmethod(counting))
    return urls


def cached_files(var: Path) -> list[Path]:
    return sorted((var / compiled.CACHE_FOLDER).glob("programme-*.pickle"))


def line_dicts(value: Any, seen: set[int] | None = None) -> int:
    """How many line-tracking mappings hang anywhere under ``value`` (models, dicts, lists, dataclasses)."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, str | int | float | bool | type(None)):
        return 0
    seen.add(id(value))
    found = int(type(value) is LineDict)
    children: Any = ()
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = value
    elif hasattr(value, "__dict__"):
        children = list(vars(value).values())
    return found + sum(line_dicts(child, seen) for child in children)


def test_a_second_load_is_served_from_the_kept_programme(
    calendars_dir: Path, tmp_path: Path, parses: list[Path]
) -> None:
    var = tmp_path / "var"
    first = compiled.load(calendars_dir, var)
    parsed = len(parses)
    assert parsed > 3 and len(cached_files(var)) == 1
    second = compiled.load(calendars_dir, var)
    assert len(parses) == parsed  # no file was parsed again
    fresh = loader.load_program(calendars_dir)
    assert second is not first and second.digest == first.digest == fresh.digest
    assert second.units == first.units == fresh.units and second.duties == fresh.duties
    assert second.workdays.fingerprint() == fresh.workdays.fingerprint()
    # Units are made models when asked for: a command that reads one unit pays for one.
    third = compiled.load(calendars_dir, var)
    unit_id = next(iter(fresh.units))
    assert len(third.units) == len(fresh.units) and unit_id in third.units and "nobody" not in third.units
    assert third.units.get("nobody") is None and third.units[unit_id] == fresh.units[unit_id]
    assert len(third.units._opened) == 1  # type: ignore[attr-defined]
    # What the running code cites is kept; the line of every unit field and contact is not.
    duty = next(iter(second.duties))
    assert str(second.where[("duty", duty)]).startswith(str(calendars_dir))
    assert not any(kind in ("unit", "contact") for kind, _ in second.where)
    assert line_dicts(second) == 0


@pytest.mark.parametrize("changed", ["huzhou/units.yaml", "huzhou/duties.yaml", "workdays/2027.yaml"])
def test_a_changed_byte_in_any_file_parses_again(
    calendars_dir: Path, tmp_path: Path, parses: list[Path], changed: str
) -> None:
    var = tmp_path / "var"
    (calendars_dir / "workdays").mkdir()
    (calendars_dir / "workdays" / "2027.yaml").write_text(WORKDAYS_2027, encoding="utf-8")
    before = compiled.load(calendars_dir, var)
    assert not before.workdays.is_workday(date(2027, 10, 4))  # a Monday the file gives off
    target = calendars_dir / changed
    if changed.startswith("workdays"):  # one byte: the Monday is worked after all, the Tuesday is off
        target.write_text(WORKDAYS_2027.replace("2027-10-04]", "2027-10-05]"), encoding="utf-8")
    else:
        target.write_bytes(target.read_bytes() + b"#")
    parses.clear()
    after = compiled.load(calendars_dir, var)
    assert target in parses  # parsed again, from the files
    assert len(cached_files(var)) == 2
    if changed.startswith("workdays"):
        assert after.workdays.is_workday(date(2027, 10, 4))
        assert not after.workdays.is_workday(date(2027, 10, 5))


def test_a_broken_file_is_reported_with_its_line_although_an_older_programme_is_kept(
    calendars_dir: Path, tmp_path: Path, settings_env: Path
) -> None:
    var = tmp_path / "var"
    compiled.load(calendars_dir, var)
    units = calendars_dir / "huzhou" / "units.yaml"
    text = units.read_text(encoding="utf-8")
    first_kind = text.index("kind:")
    units.write_text(text[:first_kind] + "kindd:" + text[first_kind + 5 :], encoding="utf-8")
    line = text[:first_kind].count("\n") + 1
    with pytest.raises(CalendarError) as raised:
        compiled.load(calendars_dir, var)
    assert any(problem.startswith(f"{units}:{line}: ") for problem in raised.value.problems), raised.value.problems
    # The command says the same, writes nothing, and shows no traceback.
    result = runner.invoke(app, ["plan", "--from", "2026-03-01", "--to", "2026-03-31", "--at", "2026-02-20T09:00"])
    assert result.exit_code == 1
    assert f"{units}:{line}: " in result.output and "Traceback" not in result.output
    assert len(cached_files(var)) == 1  # the broken folder was not kept


def test_a_corrupt_or_foreign_cache_file_is_ignored_and_rewritten(
    calendars_dir: Path, tmp_path: Path, parses: list[Path]
) -> None:
    var = tmp_path / "var"
    compiled.load(calendars_dir, var)
    [kept] = cached_files(var)
    for junk in (b"not a pickle at all", kept.read_bytes()[:100], compiled.dumps((compiled.CACHE_FORMAT, "x", 1))):
        kept.write_bytes(junk)
        parses.clear()
        program = compiled.load(calendars_dir, var)
        assert parses and isinstance(program, Program)
        key = compiled.content_key(calendars_dir)
        assert compiled.read_cached(kept, key) is not None  # rewritten, readable


def test_an_upgrade_invalidates_the_kept_programme(
    calendars_dir: Path, tmp_path: Path, parses: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "var"
    compiled.load(calendars_dir, var)
    monkeypatch.setattr(compiled, "code_fingerprint", lambda: "another-version")
    parses.clear()
    compiled.load(calendars_dir, var)
    assert parses


def test_apprise_is_asked_only_about_contacts_it_has_not_accepted(
    calendars_dir: Path, tmp_path: Path, asked: list[str]
) -> None:
    var = tmp_path / "var"
    first = compiled.load(calendars_dir, var)
    contacts = [contact.url for unit in first.units.values() for contact in unit.contacts]
    assert sorted(set(asked)) == sorted(set(contacts))
    duties = calendars_dir / "huzhou" / "duties.yaml"
    duties.write_bytes(duties.read_bytes() + b"\n# a comment: the duties changed, the contacts did not\n")
    asked.clear()
    compiled.load(calendars_dir, var)
    assert asked == []  # parsed again, no contact asked again
    units = calendars_dir / "huzhou" / "units.yaml"
    text = units.read_text(encoding="utf-8")
    changed = next(url for url in contacts if url in text)  # as written (mailto:// gains a name= when loaded)
    units.write_text(text.replace(changed, "nosuchscheme://nowhere", 1), encoding="utf-8")
    with pytest.raises(CalendarError) as raised:
        compiled.load(calendars_dir, var)
    assert asked == ["nosuchscheme://nowhere"]
    assert any("invalid apprise URL" in problem for problem in raised.value.problems)


WRITER = """
import sys
from datetime import date, datetime
from pathlib import Path
from calendars import compiled
program = compiled.load(Path(sys.argv[1]), Path(sys.argv[2]))
print(program.digest)
"""


def test_two_processes_writing_the_cache_at_once_leave_a_readable_file(calendars_dir: Path, tmp_path: Path) -> None:
    var = tmp_path / "var"
    command = [sys.executable, "-c", WRITER, str(calendars_dir), str(var)]
    children = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    [kept] = cached_files(var)
    compiled.code_fingerprint.cache_clear()  # as the children read the sources, not as an earlier test did
    program = compiled.read_cached(kept, compiled.content_key(calendars_dir))
    assert program is not None and {out.strip() for out, _ in outputs} == {program.digest}
    assert not list(kept.parent.glob(".*.tmp"))  # no temporary file left behind


def plan_month() -> dict[str, Any]:
    result = runner.invoke(
        app, ["plan", "--from", "2026-03-01", "--to", "2026-03-31", "--at", "2026-02-20T09:00", "--json"]
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def count_items() -> int:
    with db.session_scope() as session:
        return int(session.execute(select(func.count()).select_from(Occurrence)).scalar_one())


def test_the_same_plan_twice_adds_nothing_and_builds_no_rows(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = steps._duty_rows

    def counting(session: Any, ctx: Any, duty: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(duty.id)
        return real(session, ctx, duty, *args, **kwargs)

    monkeypatch.setattr(steps, "_duty_rows", counting)
    first = plan_month()
    assert first["added"] > 0 and built
    assert count_items() == first["added"]
    built.clear()
    second = plan_month()
    assert second["added"] == 0 and built == []  # the remembered range covered it: no duty expanded
    assert count_items() == first["added"]


def test_planning_writes_in_bounded_chunks(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real = steps.insert_ignoring_conflicts

    def recording(session: Any, model: Any, rows: Any) -> bool:
        sizes.append(len(rows))
        return real(session, model, rows)

    monkeypatch.setattr(steps, "PLAN_CHUNK", 7)
    monkeypatch.setattr(steps, "insert_ignoring_conflicts", recording)
    added = plan_month()["added"]
    assert added > 7 * 3 and max(sizes) == 7 and sum(sizes) == added
    assert count_items() == added


def test_unannounced_draws_in_batches_give_every_unit_its_own_days(
    session: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    duty = next(d for d in ctx.program.duties.values() if d.unannounced is not None and d.category is None)
    units = ctx.program.assignees(duty)
    assert len(units) > 1
    monkeypatch.setattr(steps, "DRAW_UNITS", 1)  # one unit a batch: every batch boundary is crossed
    start, end = date(2026, 3, 1), date(2026, 5, 31)
    at = datetime(2026, 2, 20, 9, 0, tzinfo=ctx.zone)
    added = steps.plan(session, ctx, start=start, end=end, at=at, only={duty.id})
    expected = {
        (unit_id, period.key)
        for unit_id in units
        for period in expand(duty, start, end, ctx.program.workdays, ctx.zone, unit=unit_id, seed=ctx.seed)
    }
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    stored = set(session.execute(select(col.unit_id, col.period).where(col.duty_id == duty.id)).tuples())
    assert added == len(expected) > 0 and stored == expected
    assert steps.plan(session, ctx, start=start, end=end, at=at, only={duty.id}) == 0  # looked up, none twice
