"""`duties workdays import`: the State Council's holiday notice read into calendars/workdays/YEAR.yaml.

The real 2025 and 2026 notices must give, for every day of their year, the working-day answer of the
chinesecalendar package; a notice that cannot be read fully, or that contradicts itself, writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from typer.testing import CliRunner

from calendars.arrangement import NoticeError, parse_notice, read_notice
from calendars.loader import load_program
from calendars.schema import WorkdayFile
from flows.cli import app

NOTICES = Path(__file__).resolve().parent / "data" / "notices"
runner = CliRunner()


def notice(year: int) -> str:
    return (NOTICES / f"{year}.txt").read_text(encoding="utf-8")


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def days_of(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days)]


def is_workday(file: WorkdayFile, day: date) -> bool:
    """As the loader applies a working-day file: listed days off and on, else Monday to Friday."""
    if day in file.holidays:
        return False
    return day in file.workdays or day.weekday() < 5


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("year", "source"), [(2025, "国办发明电〔2024〕12号"), (2026, "国办发明电〔2025〕7号")])
def test_real_notices_agree_with_chinesecalendar_on_every_day(year: int, source: str) -> None:
    file = parse_notice(notice(year))
    assert (file.year, file.source) == (year, source)
    wrong = [day for day in days_of(year) if is_workday(file, day) != chinese_calendar.is_workday(day)]
    assert wrong == []


def test_every_day_of_a_range_is_off_weekends_included_and_makeup_days_are_on() -> None:
    festivals = {f.name: f for f in read_notice(notice(2025)).festivals}
    assert len(festivals["春节"].days_off) == 8 and date(2025, 2, 1) in festivals["春节"].days_off
    assert festivals["端午节"].days_off == (date(2025, 5, 31), date(2025, 6, 1), date(2025, 6, 2))  # across months
    assert festivals["国庆节、中秋节"].makeup_days == (date(2025, 9, 28), date(2025, 10, 11))
    assert festivals["元旦"].days_off == (date(2025, 1, 1),)


def test_items_on_one_line_and_the_shorter_wording() -> None:
    one_line = "".join(line.strip() for line in notice(2026).splitlines())
    assert parse_notice(one_line) == parse_notice(notice(2026))
    short = "一、元旦：1月1日放假，共1天。二、春节：2月5日至11日放假调休，共7天。2月20日（星期六）上班。"
    file = parse_notice(short, year=2027, source="演示")
    assert file.holidays == [date(2027, 1, 1), *(date(2027, 2, day) for day in range(5, 12))]
    assert file.workdays == [date(2027, 2, 20)]
    mixed = notice(2025).replace("至6月2日（周一）", "至6月2日（周一)")  # a half-width bracket, as pasted
    assert parse_notice(mixed) == parse_notice(notice(2025))


def test_import_writes_the_file_that_check_and_the_loader_accept(settings_env: Path, calendars_dir: Path) -> None:
    code, out, err = run("workdays", "import", str(NOTICES / "2026.txt"), "--calendars", str(calendars_dir))
    assert code == 0, err
    assert "已写入" in out and "国庆节：10月1日至10月7日放假，共7天；9月20日（周日）、10月10日（周六）上班" in out
    written = (calendars_dir / "workdays" / "2026.yaml").read_text(encoding="utf-8")
    assert written.startswith("# 国务院办公厅关于2026年部分节假日安排的通知（国办发明电〔2025〕7号）")
    assert "2026.txt" in written.splitlines()[1]
    code, out, _ = run("workdays", "import", "-", stdin=notice(2025))  # DUTIES_CALENDARS, from standard input
    assert code == 0 and "已写入" in out
    assert "标准输入" in (calendars_dir / "workdays" / "2025.yaml").read_text(encoding="utf-8")
    code, out, _ = run("check", str(calendars_dir))
    assert code == 0, out
    calendar = load_program(calendars_dir).workdays
    for day in days_of(2025) + days_of(2026):
        loaded = calendar.overrides.get(day, day.weekday() < 5)
        assert loaded == chinese_calendar.is_workday(day), day
    code, out, _ = run("workdays", "--from", "2026-10-01", "--to", "2026-10-11", "--json")
    assert code == 0 and '"2026-10-10"' in out and '"2026-10-07"' not in out


def test_importing_the_same_notice_again_changes_nothing(settings_env: Path, calendars_dir: Path) -> None:
    assert run("workdays", "import", str(NOTICES / "2026.txt"))[0] == 0
    before = files_under(calendars_dir)
    code, out, _ = run("workdays", "import", "-", stdin=notice(2026))  # the same days, from another origin
    assert code == 0 and "已是这份安排，未改动" in out
    assert files_under(calendars_dir) == before


def test_force_replaces_a_different_file_and_dry_run_writes_nothing(settings_env: Path, calendars_dir: Path) -> None:
    path = calendars_dir / "workdays" / "2026.yaml"
    path.parent.mkdir()
    path.write_text("year: 2026\nsource: 手写\nholidays: [2026-01-01]\n", encoding="utf-8")
    code, out, _ = run("workdays", "import", str(NOTICES / "2026.txt"), "--dry-run")
    assert code == 0 and out.startswith("# 国务院办公厅关于2026年") and "  - 2026-10-10  # 国庆节" in out
    assert "手写" in path.read_text(encoding="utf-8")
    code, _, err = run("workdays", "import", str(NOTICES / "2026.txt"), "--force")
    assert code == 0, err
    assert "国办发明电〔2025〕7号" in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in path.parent.iterdir()) == ["2026.yaml"]  # no temporary file left behind


def edit(old: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return change


def drop_line(number: int) -> Callable[[str], str]:
    return lambda text: "\n".join(line for n, line in enumerate(text.splitlines(), 1) if n != number)


EXISTING = "year: 2026\nsource: 手写\nholidays: [2026-01-01]\nworkdays: []\n"
BROKEN = [
    ("wrong-total", edit("共9天", "共8天"), (), "-:10: 写的是共8天，但2月15日至2月23日是9天"),
    ("wrong-weekday", edit("1月4日（周日）", "1月4日（星期一）"), (), "-:8: 1月4日是周日，通知写的是星期一"),
    (
        "unreadable-line",
        edit("\n\n三、", "\n以上安排如有变化另行通知。\n三、"),
        (),
        "-:11: 无法识别：以上安排如有变化另行通知。",
    ),
    (
        "unreadable-rest",
        edit("放假，共3天。\n\n四", "放假，大约3天。\n\n四"),
        (),
        "-:12: 无法识别：4月4日（周六）至6日（周一）放假，大约3天。",
    ),
    ("impossible-date", edit("2月28日（周六）", "2月30日（周六）"), (), "-:10: 2月30日不存在"),
    (
        "no-year",
        drop_line(1),
        (),
        "-:1: 找不到年份：缺少标题“国务院办公厅关于YYYY年部分节假日安排的通知”，请用 --year 指定年份",
    ),
    ("other-year", lambda text: text, ("--year", "2025"), "-:1: 通知标题是2026年，--year 却是2025"),
    ("no-source", drop_line(2), (), "-:1: 通知中没有文号（如 国办发明电〔2025〕7号），请用 --source 指定来源"),
    ("off-and-on", edit("10月10日（周六）上班", "10月7日（周三）上班"), (), "-:20: 10月7日既放假（国庆节）又上班"),
    ("outside-year", edit("9月20日（周日）", "2025年9月20日（周六）"), (), "-:20: 2025年9月20日不在2026年内"),
    ("numbering", edit("四、劳动节", "五、劳动节"), (), "-:14: 编号应为“四、”，这里是“五、”"),
    ("existing", lambda text: text, (), "2026.yaml 已存在且内容不同，未写入；确认替换请加 --force。"),
]


@pytest.mark.parametrize(("change", "options", "message"), [case[1:] for case in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_broken_notice_is_refused_and_nothing_is_written(
    settings_env: Path, calendars_dir: Path, change: Callable[[str], str], options: tuple[str, ...], message: str
) -> None:
    if message.startswith("2026.yaml"):  # the "existing" case: a different file is already there
        (calendars_dir / "workdays").mkdir()
        (calendars_dir / "workdays" / "2026.yaml").write_text(EXISTING, encoding="utf-8")
    before = files_under(calendars_dir)
    code, _, err = run("workdays", "import", "-", *options, stdin=change(notice(2026)))
    assert code == 1
    assert message in err
    assert "Traceback" not in err and "未写入" in err
    assert files_under(calendars_dir) == before


def test_errors_name_the_file_and_line(settings_env: Path, calendars_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "notice.txt"
    broken.write_text(notice(2025).replace("（周六）至6月2日", "（周五）至6月2日"), encoding="utf-8")
    code, _, err = run("workdays", "import", str(broken))
    assert code == 1 and f"{broken}:18: 5月31日是周六，通知写的是周五" in err
    assert not (calendars_dir / "workdays").exists()


def test_parse_errors_carry_their_line_numbers() -> None:
    with pytest.raises(NoticeError) as caught:
        parse_notice(notice(2026).replace("共3天", "共4天"))
    assert caught.value.lines("2026.txt") == [
        "2026.txt:8: 写的是共4天，但1月1日至1月3日是3天",
        "2026.txt:12: 写的是共4天，但4月4日至4月6日是3天",
        "2026.txt:16: 写的是共4天，但6月19日至6月21日是3天",
        "2026.txt:18: 写的是共4天，但9月25日至9月27日是3天",
    ]


def test_the_listing_still_needs_its_range(settings_env: Path) -> None:
    code, _, err = run("workdays")
    assert code == 2 and "需要 --from 和 --to" in err
