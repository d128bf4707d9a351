"""The guidance read clause by clause against the shipped calendars (issue 13), and the programme as data.

Each test here failed before the gap it names was closed: the two 三(五)2 targets, the sample greening calendar and
the duty that replaces it, the units the text names, 装灯率100%, the 附件1 第7项 目标 citations, the measures left
out on purpose, and the office and document that a city's own ``programme:`` block now supplies.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from calendars.loader import check, load_program
from flows import steps
from flows.notices import message
from flows.runtime import make_context
from flows.steps import Context
from store.models import Delivery, Occurrence
from templates import render
from tests.conftest import REPO, SHANGHAI, local
from tests.desk_support import log_in
from tests.web_support import path_of

SHIPPED = REPO / "calendars"
SAMPLE = "【示例月历】以下养护任务为示例，待市城管办印发《园林绿化精细化管理基础月历》后以正式月历为准"


# ---------------------------------------------------------------- 三(五)2, 附件1 第3项 举措1, 附件1 第7项


def test_demo_areas_and_demo_stations_are_two_targets_of_ten() -> None:
    duties = load_program(SHIPPED).duties
    areas, stations = duties["target-joint-demo-areas"], duties["target-joint-demo-stations"]
    assert areas.clause == stations.clause == "三(五)2"
    assert areas.target and areas.target.goal == 10 and "示范区" in areas.target.measure
    assert stations.target and stations.target.goal == 10 and "站点" in stations.target.measure
    assert not [d.id for d in duties.values() if d.clause == "三(五)2" and d.target and d.target.goal == 20]


def test_the_installation_rate_is_tracked_beside_the_lighting_rate() -> None:
    duties = load_program(SHIPPED).duties
    installed, lit = duties["streetlight-install-rate"], duties["streetlight-rate"]
    assert installed.clause == lit.clause == "附件1 第3项 举措1"
    assert installed.target and (installed.target.goal, installed.target.mode) == (100, "level")
    assert "装灯率" in installed.target.measure and installed.recurrence == lit.recurrence
    assert lit.target and lit.target.goal == 98


def test_the_safety_numbers_cite_the_targets_of_item_7() -> None:
    duties = load_program(SHIPPED).duties
    checkups = duties["safety-community-checkups"]
    assert checkups.clause == "附件1 第7项 目标1" and checkups.quote.startswith("对100个以上小区")
    for duty_id in ("safety-elevators", "safety-fire", "safety-gas"):
        duty = duties[duty_id]
        assert duty.clause == "附件1 第7项 目标2", duty_id
        assert duty.quote.startswith("完成1000部以上电梯、1000处以上消防和10000户以上燃气设施的安全检查"), duty_id


# ---------------------------------------------------------------- units the text names


def test_the_units_the_text_names_are_there_and_do_what_it_assigns() -> None:
    program = load_program(SHIPPED)
    units, duties = program.units, program.duties
    town_offices = program.resolve("kind:town_office")
    assert len(town_offices) == len(program.resolve("kind:street")) == 15  # 四3: 市、区县、镇各级城管办
    assert all(units[u].district for u in town_offices)
    assert set(town_offices) <= set(program.assignees(duties["director-patrol"]))
    assert "city-fire" in duties["safety-fire"].cooperating  # 附件1 第7项 责任单位: 消防救援机构
    assert "city-police" in duties["target-police-stations"].cooperating  # 附件2 第1项: 公安
    elderly = duties["elderly-volunteering-rules"]  # 附件2 第2项: 文明办和民政部门共同牵头认领一项助老志愿服务
    assert set(elderly.lead) == {"city-civilization", "city-civil-affairs"}
    assert "city-civil-affairs" in elderly.assignees
    assert "city-civilization" not in duties["three-adoptions-rules"].cooperating  # 住建 no longer owns it
    assert units["city-greening"].district is None  # 附件1 第2项 目标2: 市、区县管养责任单位
    assert "city-greening" in program.assignees(duties["target-green-belt-maintainers"])
    assert "kind:street" in duties["target-road-repair"].lead  # 附件1 第4项: 属地乡镇（街道）牵头道路修复
    for unit_id in ("city-fire", "city-police", "city-civil-affairs", "city-greening", *town_offices):
        assert units[unit_id].contacts[0].url.startswith("mailto://127.0.0.1:8025?"), unit_id


# ---------------------------------------------------------------- the sample greening calendar


def test_the_greening_tasks_say_they_are_a_sample_and_the_office_issues_the_real_one() -> None:
    duties = load_program(SHIPPED).duties
    assert duties["greening-monthly"].sample and duties["greening-monthly"].sample.startswith(SAMPLE)
    issue = duties["greening-calendar-issue"]
    assert issue.clause == "三(二)3" and issue.lead == ["city-office"] and issue.assignees == ["city-office"]
    assert "BYMONTH=12" in issue.period_rule.rrule and issue.inferred and "下一年度" in issue.title


SAMPLE_DUTY = """duties:
  - id: sweep
    family: 园林绿化
    title: 绿化养护
    clause: 三(二)3
    quote: 开展绿化养护工作。
    lead: [office]
    assignees: ["kind:street"]
    recurrence: {rrule: FREQ=MONTHLY, period: month}
    sample: 示例任务
"""


TASKS = "    monthly_tasks: {1: [修剪]}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SAMPLE_DUTY, "sample: marks the monthly_tasks as a sample, and this duty has none"),
        (SAMPLE_DUTY.replace("sample: 示例任务", "sample: ' '") + TASKS, "sample: say in words what is a sample"),
        (SAMPLE_DUTY + TASKS, ""),
    ],
)
def test_a_sample_notice_needs_words_and_tasks_to_mark(tmp_path: Path, text: str, message: str) -> None:
    write_programme(tmp_path, duties=text)
    problems = check(tmp_path)
    if not message:
        assert problems == []
        return
    (problem,) = problems  # on the sample line itself
    assert problem.startswith(f"{tmp_path / 'duties.yaml'}:10: ") and message in problem, problem


def greening_item(session: Session, ctx: Context) -> Occurrence:
    steps.plan(
        session,
        ctx,
        start=date(2026, 2, 1),
        end=date(2026, 2, 28),
        at=local("2026-01-20T08:00"),
        only={"greening-monthly"},
    )
    query = select(Occurrence).where(col(Occurrence.unit_id) == "wuxing-greening")
    return session.execute(query).scalar_one()


def test_a_greening_reminder_and_digest_say_the_tasks_are_a_sample(session: Session, ctx: Context) -> None:
    item = greening_item(session, ctx)
    duty = ctx.program.duties["greening-monthly"]
    _, body = message(ctx, "reminder", item, duty, at=local("2026-02-03T09:00"), days_left=25)
    assert body.index(SAMPLE) < body.index("本期任务：") < body.index("修剪收尾")
    assert "依据：湖城管委〔2022〕2号 三(二)3" in body and body.rstrip().endswith(
        "湖州市城市管理委员会办公室（市城管办）"
    )
    entries = [{"item": SimpleNamespace(occurrence=item, duty=duty, days_left=25), "link": "L"}]
    digest = render(
        "messages/digest.txt.j2", unit=ctx.program.units[item.unit_id], entries=entries, unit_link="U", zone=SHANGHAI
    )
    assert digest.index(SAMPLE) < digest.index("本期任务：修剪收尾")
    other = ctx.program.duties["clean-home-street"]
    assert other.sample is None and not other.monthly_tasks


def test_the_confirmation_and_desk_pages_say_the_tasks_are_a_sample(
    session: Session, ctx: Context, client: TestClient
) -> None:
    item = greening_item(session, ctx)
    page = client.get(path_of(ctx, item, local("2026-02-03T09:00"))).text
    assert page.index(SAMPLE) < page.index("修剪收尾")
    assert "湖城管委〔2022〕2号 三(二)3" in page and "湖州市城市管理委员会办公室" in page
    log_in(client, session, "boss")
    desk = client.get(f"/desk/items/{item.id}").text
    assert desk.index(SAMPLE) < desk.index("修剪收尾")


# ---------------------------------------------------------------- every measure is a duty or left out on purpose

SECTIONS = ["一", "二", *(f"三({p}){n}" for p in "一二三四五" for n in (1, 2, 3)), *(f"四{n}" for n in (1, 2, 3, 4))]
ITEMS = {  # (attachment, item): (numbered targets, 0 for a single one; measures)
    (1, 1): (0, 5),
    (1, 2): (2, 3),
    (1, 3): (3, 3),
    (1, 4): (4, 4),
    (1, 5): (0, 3),
    (1, 6): (3, 4),
    (1, 7): (2, 5),
    (2, 1): (2, 3),
    (2, 2): (0, 2),
    (2, 3): (3, 3),
}


def every_clause() -> set[str]:
    clauses = set(SECTIONS)
    for (attachment, number), (targets, measures) in ITEMS.items():
        item = f"附件{attachment} 第{number}项"
        clauses |= {f"{item} 目标{n}" for n in range(1, targets + 1)} if targets else {item}
        clauses |= {f"{item} 举措{n}" for n in range(1, measures + 1)}
    return clauses


def cited_in(text: str) -> set[str]:
    """Clauses a text names, with 举措1–3 and 举措1、3 spelled out."""
    found = set(re.findall(r"(?<![一二三四五])[一二](?= )", text))
    for section, numbers in re.findall(r"(三\([一二三四五]\)|四)([\d、–]+)", text):
        found |= {f"{section}{n}" for n in spell_out(numbers)}
    for item, rest in re.findall(r"(附件\d 第\d项)((?: ?(?:举措|目标)[\d、–]+)*)", text):
        found |= {
            f"{item} {kind}{n}"
            for kind, numbers in re.findall(r"(举措|目标)([\d、–]+)", rest)
            for n in spell_out(numbers)
        } or {item}
    return found


def spell_out(numbers: str) -> list[int]:
    spelled: list[int] = []
    for part in filter(None, numbers.split("、")):
        low, _, high = part.partition("–")
        spelled += range(int(low), int(high or low) + 1)
    return spelled


def test_docs_map_every_clause_of_the_guidance_to_a_duty_or_a_reason() -> None:
    doc = (REPO / "docs" / "programme.md").read_text(encoding="utf-8")
    table, _, rest = doc.partition("## Not encoded as duties, and why")
    missing = every_clause() - cited_in(table) - cited_in(rest)
    assert not missing, sorted(missing)
    for measure in (
        "附件1 第1项 举措1",
        "附件1 第1项 举措3",
        "附件1 第5项 举措1",
        "附件1 第5项 举措2",
        "附件2 第1项 目标2",
    ):
        assert measure in cited_in(rest), measure


def test_docs_list_every_duty_with_its_clause() -> None:
    rows = (REPO / "docs" / "programme.md").read_text(encoding="utf-8").splitlines()
    for duty in load_program(SHIPPED).duties.values():
        found = [row for row in rows if f"| `{duty.id}` |" in row]
        assert found and found[0].startswith(f"| {duty.clause} |"), duty.id


# ---------------------------------------------------------------- the programme block


def test_the_shipped_programme_names_its_document_office_and_signature() -> None:
    program = load_program(SHIPPED)
    assert program.programme is not None
    assert program.programme.document == "湖城管委〔2022〕2号"
    assert program.programme.office == "湖州市城市管理委员会办公室" and program.programme.office_short == "市城管办"
    assert program.programme.name == "关于加快打造城市精细化管理升级版的指导意见"
    prefixes = [level.document_prefix for level in program.ladders["default"].levels]
    assert prefixes == ["湖城管交", "湖城管督", "湖城管谈"]  # written out, so another city changes them in its YAML


def test_a_second_programme_block_is_a_path_and_line_error(tmp_path: Path) -> None:
    write_programme(tmp_path)
    second = tmp_path / "sites.yaml"  # read after programme.yaml
    second.write_text("# another\n" + PROGRAMME, encoding="utf-8")
    (problem,) = check(tmp_path)
    assert problem.startswith(f"{second}:2: a second programme block (first at {tmp_path / 'programme.yaml'}:1)")


def test_the_programme_is_part_of_the_digest(tmp_path: Path) -> None:
    write_programme(tmp_path)
    before = load_program(tmp_path).digest
    write_programme(tmp_path, programme=PROGRAMME.replace("绍城管委〔2024〕1号", "绍城管委〔2024〕2号"))
    assert load_program(tmp_path).digest != before


def test_sms_contacts_are_signed_with_the_programme_signature_unless_they_sign_themselves(tmp_path: Path) -> None:
    sms = """
      - name: 短信
        url: smsgw://127.0.0.1:2526/sms?to=13800000000
      - name: 短信（自带签名）
        url: smsgw://127.0.0.1:2526/sms?to=13900000000&sign=街道
"""
    write_programme(tmp_path, units=UNITS.replace("    contacts:\n", "    contacts:" + sms, 1))
    urls = [c.url for c in load_program(tmp_path).units["office"].contacts]
    assert urls[0] == "smsgw://127.0.0.1:2526/sms?to=13800000000&sign=%E7%BB%8D%E5%85%B4%E5%9F%8E%E7%AE%A1"  # 绍兴城管
    assert urls[1].endswith("&sign=街道")


PROGRAMME = """programme:
  name: 关于深化城市精细化管理的实施意见
  document: 绍城管委〔2024〕1号
  office: 绍兴市城市管理委员会办公室
  office_short: 绍兴市城管办
  sms_signature: 绍兴城管
"""
UNITS = """units:
  - id: office
    name: 绍兴市城市管理委员会办公室
    kind: city_office
    contacts:
      - name: mail
        url: mailto://127.0.0.1:2525?from=duties@sx.local&to=office@sx.local
  - id: street-a
    name: 越城区甲街道
    kind: street
    district: office
    contacts:
      - name: mail
        url: mailto://127.0.0.1:2525?from=duties@sx.local&to=a@sx.local
"""
LADDER = """ladders:
  - id: default
    clause: 第三条
    quote: 对逾期未完成的责任单位予以交办
    levels:
      - {level: 1, name: 交办, document_prefix: 绍城管交, timeout_workdays: 5, audience: [unit, lead]}
"""
DUTIES = """duties:
  - id: sweep
    family: 环境卫生大扫除
    title: 每月环境卫生大扫除
    clause: 三(一)2
    quote: 每月开展一次环境卫生大扫除。
    lead: [office]
    assignees: ["kind:street"]
    recurrence: {rrule: FREQ=MONTHLY, period: month}
    reminders: [0]
"""


def write_programme(
    folder: Path, *, programme: str = PROGRAMME, units: str = UNITS, ladder: str = LADDER, duties: str = DUTIES
) -> None:
    for name, text in (("programme", programme), ("units", units), ("ladders", ladder), ("duties", duties)):
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_another_city_loads_its_own_guidance_and_its_messages_carry_no_huzhou_text(
    tmp_path: Path, session: Session
) -> None:
    folder = tmp_path / "shaoxing"
    folder.mkdir()
    write_programme(folder)
    program = load_program(folder)
    steps.sync_program(session, program, at=local("2026-01-01T00:00"))
    ctx = make_context(session, program)
    steps.plan(session, ctx, start=date(2026, 3, 1), end=date(2026, 3, 31), at=local("2026-02-20T08:00"))
    steps.remind(session, ctx, at=local("2026-03-31T09:00"))
    steps.escalate(session, ctx, at=local("2026-04-01T09:00"))
    bodies = {d.stage.split(":")[0]: (d.title, d.body) for d in session.execute(select(Delivery)).scalars()}
    reminder, notice = bodies["remind"], bodies["level"]
    assert "依据：绍城管委〔2024〕1号 三(一)2：每月开展一次环境卫生大扫除。" in reminder[1]
    assert reminder[1].rstrip().endswith("绍兴市城市管理委员会办公室（绍兴市城管办）")
    assert "绍城管交〔2026〕1号" in notice[0] + notice[1]
    assert "根据绍城管委〔2024〕1号 第三条“对逾期未完成的责任单位予以交办”" in notice[1]
    for title, body in bodies.values():
        assert "湖" not in title + body and "2022" not in body, body  # no 湖州, 湖城管委〔2022〕2号, 湖城管交
