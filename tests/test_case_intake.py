"""Case intake (issue 15): the inspector's phone form, signed or signed-in; POST /api/cases; a spot check's 不合格
finding; ``duties case …``. Real SQLite, the real app through TestClient, mail at the real SMTP receiver, and the
store counted after every refusal: nothing half-written."""

from __future__ import annotations

import base64
import io
import json
import time
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlmodel import Session, col
from typer.testing import CliRunner

from calendars.loader import check as check_calendars
from flows import steps
from flows.cli import app as cli
from flows.cli_cases import inspector_link
from flows.common import Context
from flows.steps import confirm
from notify.receivers import Inbox
from store.models import AuditEvent, Case, CheckResult, Delivery, Occurrence, User
from tests.conftest import local
from tests.desk_support import PASSWORD, api_headers, csrf_of
from tests.web_support import Clock, path_of, png
from web import auth

DISPATCHED = "【案件派遣】"
SITES = {"site-dust-noise-check"}
runner = CliRunner()


# ---------------------------------------------------------------- helpers


def add_account(session: Session, username: str, role: str, district: str | None = None) -> User:
    return auth.add_user(
        session,
        username=username,
        password=PASSWORD,
        role=role,
        district=district,
        display_name=f"{username}（巡查）",
        at=local("2026-01-01T09:00"),
    )


def log_in_as(client: TestClient, session: Session, username: str, role: str, district: str | None = None) -> str:
    """An account of any role, logged in through the real form; returns the CSRF token of the forms that follow."""
    add_account(session, username, role, district)
    form = client.get("/desk/login")
    token = csrf_of(form.text)
    data = {"username": username, "password": PASSWORD, "csrf": token, "next": "/desk/cases/new"}
    assert client.post("/desk/login", data=data, follow_redirects=False).status_code == 303
    return token


def token_for(session: Session, username: str, role: str, district: str | None = None) -> dict[str, str]:
    user = add_account(session, username, role, district)
    return {"Authorization": f"Bearer {auth.new_api_token(session, user)}"}


def jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 140, 70)).save(buffer, "JPEG")
    return buffer.getvalue()


def counts(session: Session) -> tuple[int, int, int, int]:
    """Cases, items, deliveries and audit events: what a refusal must leave as it was."""
    session.expire_all()
    return tuple(
        session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Case, Occurrence, Delivery, AuditEvent)
    )


def cases_in(session: Session) -> list[Case]:
    session.expire_all()
    return list(session.execute(select(Case).order_by(col(Case.id))).scalars())


def dispatched_mails(inbox: Inbox) -> list[str]:
    return [mail.subject for mail in inbox.mails if DISPATCHED in mail.subject]


FORM = {
    "category": "market-litter",
    "place": "飞英农贸市场东门",
    "note": "东门口一堆菜叶",
    "latitude": "30.8702",
    "longitude": "120.0936",
    "unit": "",
}


# ---------------------------------------------------------------- the phone form, signed in


def test_an_inspector_files_from_the_phone_form_and_the_unit_has_the_mail_within_a_second(
    client: TestClient, session: Session, fresh_inbox: Inbox
) -> None:
    csrf = log_in_as(client, session, "walker", "inspector")
    form = client.get("/desk/cases/new")
    assert form.status_code == 200
    assert "使用当前位置" in form.text and 'capture="environment"' in form.text and "自动按地点派遣" in form.text
    assert "市场零星垃圾、积水（30分钟内处置）" in form.text
    assert "walker（巡查）（全市）" in form.text and "None" not in form.text  # a district-less inspector files anywhere
    started = time.perf_counter()
    response = client.post(
        "/desk/cases/new",
        data=FORM | {"form_id": "f-1", "csrf": csrf},
        files=[("evidence", ("scene.png", png(4), "image/png"))],
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert "已受理" in response.text and "飞英农贸市场" in response.text
    assert "2026年2月3日（周二）10:30" in response.text  # 30 minutes from 10:00, inside the market's hours
    assert dispatched_mails(fresh_inbox), "the unit's mail must be at the receiver when the POST returns"
    assert elapsed < 1.0, f"intake to first message took {elapsed:.2f}s"
    (case,) = cases_in(session)
    assert response.headers["X-Duties-Case"] == str(case.id)
    assert (case.reporter, case.source, case.external_id) == ("user:walker", "inspector", "form:f-1")
    assert (case.latitude, case.longitude, len(case.photos)) == (30.8702, 120.0936, 1)
    item = session.get(Occurrence, case.occurrence_id)
    assert item is not None and item.unit_id == "wuxing-feiying-market" and item.due_at == local("2026-02-03T10:30")


def test_a_double_submit_is_one_case_and_one_message(client: TestClient, session: Session, fresh_inbox: Inbox) -> None:
    csrf = log_in_as(client, session, "walker", "inspector")
    first = client.post("/desk/cases/new", data=FORM | {"form_id": "same", "csrf": csrf})
    again = client.post("/desk/cases/new", data=FORM | {"form_id": "same", "csrf": csrf})
    assert first.status_code == again.status_code == 200
    assert first.headers["X-Duties-Case"] == again.headers["X-Duties-Case"]
    assert "已提交过" in again.text and len(cases_in(session)) == 1
    assert len(dispatched_mails(fresh_inbox)) == 1


def test_a_refused_form_comes_back_with_everything_typed_and_nothing_written(
    client: TestClient, session: Session
) -> None:
    csrf = log_in_as(client, session, "walker", "inspector")
    before = counts(session)
    response = client.post(
        "/desk/cases/new",
        data=FORM | {"place": "  ", "note": "积水约两平方米", "form_id": "f-2", "csrf": csrf},
        files=[("evidence", ("scene.png", png(), "image/png"))],
    )
    assert response.status_code == 400
    assert "请填写问题地点" in response.text and "照片需重新选择" in response.text
    assert "积水约两平方米" in response.text and 'value="30.8702"' in response.text and 'value="f-2"' in response.text
    assert counts(session) == before


def test_a_photo_that_is_not_an_image_is_refused_on_the_form(client: TestClient, session: Session) -> None:
    csrf = log_in_as(client, session, "walker", "inspector")
    before = counts(session)
    response = client.post(
        "/desk/cases/new",
        data=FORM | {"form_id": "f-3", "csrf": csrf},
        files=[("evidence", ("notes.txt", b"not a picture", "text/plain"))],
    )
    assert response.status_code == 400 and "不是 JPEG 或 PNG 图片" in response.text
    assert counts(session) == before


def test_a_district_inspector_cannot_file_for_another_district(client: TestClient, session: Session) -> None:
    csrf = log_in_as(client, session, "south", "inspector", district="nanxun")
    form = client.get("/desk/cases/new")
    assert "南浔" in form.text and "飞英农贸市场</option>" not in form.text  # only its own district's units offered
    before = counts(session)
    response = client.post("/desk/cases/new", data=FORM | {"form_id": "f-4", "csrf": csrf})
    assert response.status_code == 403 and "不属于本账号所在区县" in response.text
    assert counts(session) == before


def test_the_form_without_a_csrf_token_is_refused(client: TestClient, session: Session) -> None:
    log_in_as(client, session, "walker", "inspector")
    response = client.post("/desk/cases/new", data=FORM | {"form_id": "f-5", "csrf": "forged"})
    assert response.status_code == 403 and cases_in(session) == []


def test_a_manager_files_from_the_same_form_and_an_unknown_place_waits_for_the_dispatcher(
    client: TestClient, session: Session, fresh_inbox: Inbox
) -> None:
    csrf = log_in_as(client, session, "boss", "city")
    response = client.post("/desk/cases/new", data=FORM | {"place": "人民广场", "form_id": "f-6", "csrf": csrf})
    assert response.status_code == 200 and "待派遣：由市城管办指定单位" in response.text
    (case,) = cases_in(session)
    assert case.occurrence_id is None and case.reporter == "user:boss" and dispatched_mails(fresh_inbox) == []


def test_the_form_needs_a_login(client: TestClient) -> None:
    response = client.get("/desk/cases/new", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/desk/login")


# ---------------------------------------------------------------- the signed inspector link


def _link_path(session: Session, ctx: Context, user: User) -> str:
    return "/i/" + inspector_link(ctx.secret, user, at=local("2026-02-01T09:00")).rsplit("/i/", 1)[1]


def test_the_signed_link_opens_the_form_without_a_login_and_files(
    client: TestClient, session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    user = add_account(session, "walker", "inspector")
    path = _link_path(session, ctx, user)
    form = client.get(path)
    assert form.status_code == 200 and 'name="csrf"' not in form.text and "walker（巡查）" in form.text
    response = client.post(path, data=FORM | {"form_id": "l-1"})
    assert response.status_code == 200 and "已受理" in response.text and f'href="{path}"' in response.text
    (case,) = cases_in(session)
    assert case.reporter == "user:walker" and dispatched_mails(fresh_inbox)


def test_a_new_password_or_a_disabled_account_ends_the_link(client: TestClient, session: Session, ctx: Context) -> None:
    user = add_account(session, "walker", "inspector")
    path = _link_path(session, ctx, user)
    assert client.get(path).status_code == 200
    auth.set_password(session, user, "another long password")
    refused = client.get(path)
    assert refused.status_code == 410 and "链接已作废" in refused.text
    assert client.post(path, data=FORM | {"form_id": "l-2"}).status_code == 410 and cases_in(session) == []
    fresh = _link_path(session, ctx, user)
    assert client.get(fresh).status_code == 200
    auth.set_active(session, user, False)
    assert client.get(fresh).status_code == 410


def test_a_tampered_or_expired_link_is_refused(client: TestClient, session: Session, ctx: Context, now: Clock) -> None:
    user = add_account(session, "walker", "inspector")
    path = _link_path(session, ctx, user)
    assert client.get(path[:-3] + "xyz").status_code == 400
    now.at = local("2026-06-01T09:00")  # 90 days after 2026-02-01
    assert client.get(path).status_code == 410


# ---------------------------------------------------------------- POST /api/cases


API_CASE = {"category": "market-litter", "place": "飞英农贸市场东门", "note": "12345 市民来电", "external_id": "H-0001"}


def test_the_api_files_once_and_a_replay_returns_the_same_case(
    client: TestClient, session: Session, fresh_inbox: Inbox
) -> None:
    headers = token_for(session, "hotline", "intake")
    started = time.perf_counter()
    first = client.post("/api/cases", json=API_CASE, headers=headers)
    elapsed = time.perf_counter() - started
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["unit"] == "wuxing-feiying-market"
    assert (body["status"], body["status_label"]) == ("handling", "处置中")
    assert body["due"] == "2026-02-03T10:30:00+08:00" and body["occurrence"]
    assert dispatched_mails(fresh_inbox) and elapsed < 1.0
    before = counts(session)
    again = client.post("/api/cases", json=API_CASE | {"note": "重复推送"}, headers=headers)
    assert again.status_code == 200 and again.json() == body | {"created": False}
    assert counts(session) == before and len(dispatched_mails(fresh_inbox)) == 1
    (case,) = cases_in(session)
    assert (case.reporter, case.source, case.note) == ("api:hotline", "api", "12345 市民来电")
    shown = client.get(f"/api/cases/{body['id']}", headers=headers)
    assert shown.status_code == 200 and shown.json() == body | {"created": False}


def test_the_api_takes_photos_in_base64(client: TestClient, session: Session) -> None:
    headers = token_for(session, "hotline", "intake")
    photo = {"filename": "scene.jpg", "data": base64.b64encode(jpeg()).decode()}
    response = client.post("/api/cases", json=API_CASE | {"photos": [photo]}, headers=headers)
    assert response.status_code == 201, response.text
    (case,) = cases_in(session)
    assert len(case.photos) == 1 and case.photos[0].endswith(".jpg")


def test_an_unknown_category_is_a_400_that_lists_the_categories(client: TestClient, session: Session) -> None:
    headers = token_for(session, "hotline", "intake")
    before = counts(session)
    response = client.post("/api/cases", json=API_CASE | {"category": "graffiti"}, headers=headers)
    assert response.status_code == 400
    assert (
        "没有编号为 graffiti 的案件类别" in response.json()["detail"] and "market-litter" in response.json()["detail"]
    )
    assert counts(session) == before


def test_an_unknown_place_waits_for_the_dispatcher(client: TestClient, session: Session, fresh_inbox: Inbox) -> None:
    headers = token_for(session, "hotline", "intake")
    response = client.post("/api/cases", json=API_CASE | {"place": "人民广场西侧"}, headers=headers)
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["status_label"], body["unit"], body["due"]) == ("undispatched", "待派遣", None, None)
    assert dispatched_mails(fresh_inbox) == []


def test_a_unit_outside_the_tokens_district_is_a_403_and_nothing_written(client: TestClient, session: Session) -> None:
    headers = token_for(session, "south-hotline", "intake", district="nanxun")
    before = counts(session)
    response = client.post("/api/cases", json=API_CASE | {"unit": "wuxing-feiying-market"}, headers=headers)
    assert response.status_code == 403 and "不属于本账号所在区县" in response.json()["detail"]
    assert counts(session) == before


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ({"filename": "big.jpg", "data": "A" * (14 * 1024 * 1024)}, "超过 10 MB"),
        ({"filename": "big.jpg", "data": base64.b64encode(b"\xff" * (10 * 1024 * 1024 + 1)).decode()}, "超过 10 MB"),
        ({"filename": "notes.txt", "data": base64.b64encode(b"hello").decode()}, "不是 JPEG 或 PNG 图片"),
        ({"filename": "broken.jpg", "data": "***"}, "不是有效的 base64 编码"),
    ],
    ids=["oversize-text", "oversize-decoded", "not-an-image", "not-base64"],
)
def test_a_bad_photo_is_a_400_and_nothing_written(
    client: TestClient, session: Session, photo: dict[str, str], expected: str
) -> None:
    headers = token_for(session, "hotline", "intake")
    before = counts(session)
    response = client.post("/api/cases", json=API_CASE | {"photos": [photo]}, headers=headers)
    assert response.status_code == 400 and expected in response.json()["detail"]
    assert counts(session) == before


def test_bad_fields_are_refused_in_chinese(client: TestClient, session: Session) -> None:
    headers = token_for(session, "hotline", "intake")
    half = client.post("/api/cases", json=API_CASE | {"latitude": 30.1}, headers=headers)
    assert half.status_code == 400 and "纬度和经度" in half.json()["detail"]
    no_place = client.post("/api/cases", json=API_CASE | {"place": " "}, headers=headers)
    assert no_place.status_code == 400 and "请填写问题地点" in no_place.json()["detail"]
    missing = client.post("/api/cases", json={"place": "x", "latitude": "north"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["detail"] == "缺少必填字段 category；latitude 须为数字。"
    assert {tuple(e["loc"]) for e in missing.json()["errors"]} == {("body", "category"), ("body", "latitude")}
    broken = client.post("/api/cases", content=b"{not json", headers=headers | {"Content-Type": "application/json"})
    assert broken.status_code == 422 and "不是有效的 JSON" in broken.json()["detail"]
    assert cases_in(session) == []


def test_an_intake_token_is_refused_on_the_managers_endpoints_and_a_missing_token_everywhere(
    client: TestClient, session: Session
) -> None:
    headers = token_for(session, "hotline", "intake")
    refused = client.get("/api/occurrences", headers=headers)
    assert refused.status_code == 403 and "只能上报案件" in refused.json()["detail"]
    assert client.post("/api/cases", json=API_CASE).status_code == 401


def test_a_case_is_seen_by_its_reporter_the_city_and_its_district_only(client: TestClient, session: Session) -> None:
    created = client.post("/api/cases", json=API_CASE, headers=token_for(session, "hotline", "intake")).json()
    path = f"/api/cases/{created['id']}"
    assert client.get(path, headers=api_headers(session, "city-boss")).status_code == 200
    assert client.get(path, headers=api_headers(session, "wuxing-boss", district="wuxing")).status_code == 200
    elsewhere = client.get(path, headers=api_headers(session, "nanxun-boss", district="nanxun"))
    assert elsewhere.status_code == 404
    other_intake = client.get(path, headers=token_for(session, "other", "intake"))
    assert other_intake.status_code == 404
    assert client.get("/api/cases/999", headers=api_headers(session, "city-2")).status_code == 404


def test_the_reporting_platform_verifies_its_case_and_no_other_account_may(
    client: TestClient, session: Session, now: Clock
) -> None:
    hotline = token_for(session, "hotline", "intake")
    created = client.post("/api/cases", json=API_CASE, headers=hotline).json()
    path = f"/api/cases/{created['id']}/verify"
    early = client.post(path, json={"passed": True}, headers=hotline)
    assert early.status_code == 409 and "尚未报告处置" in early.json()["detail"]
    steps.confirm(
        session,
        occurrence_id=created["occurrence"],
        note="已处置",
        evidence=[],
        at=local("2026-02-03 10:10"),
        client="t",
    )
    now.at = local("2026-02-03 10:30")
    assert client.post(path, json={"passed": True}, headers=token_for(session, "other", "intake")).status_code == 404
    refused = client.post(path, json={"passed": False}, headers=hotline)
    assert refused.status_code == 400 and "理由" in refused.json()["detail"]
    closed = client.post(path, json={"passed": True, "note": "市民回访满意"}, headers=hotline)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert client.post(path, json={"passed": True}, headers=hotline).status_code == 409  # 已结案


def test_the_openapi_document_describes_the_case_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/api/cases"]["post"]
    assert {"200", "201", "400", "403", "422"} <= set(post["responses"])
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Invalid")
    fields = spec["components"]["schemas"]["CaseIn"]["properties"]
    assert "幂等" in post["description"] or "同一案件" in fields["external_id"]["description"]
    assert "/api/cases/{case_id}" in spec["paths"]


# ---------------------------------------------------------------- a spot check's finding


def test_a_failed_spot_check_becomes_a_case_for_the_market(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, fresh_inbox: Inbox
) -> None:
    path = path_of(ctx, item, local("2026-02-03T10:00"))
    form = {"subject": "wuxing-feiying-market", "passed": "0", "problem": "摊位周边垃圾未清运", "form_id": "chk-1"}
    response = client.post(path, data=form, files=[("evidence", ("scene.png", png(2), "image/png"))])
    assert response.status_code == 200, response.text
    (case,) = cases_in(session)
    assert f"已生成案件 {case.id}，已派遣给飞英农贸市场" in response.text
    (result,) = session.execute(select(CheckResult)).scalars()
    assert (case.category_id, case.place, case.note) == ("market-hygiene", "飞英农贸市场", "摊位周边垃圾未清运")
    assert (case.reporter, case.source, case.external_id) == ("unit:wuxing-msb", "check", f"check:{result.id}")
    assert case.check_result_id == result.id and len(case.photos) == 1
    case_item = session.get(Occurrence, case.occurrence_id)
    assert case_item is not None and case_item.unit_id == "wuxing-feiying-market"
    assert case_item.due_at == local("2026-02-04T17:30")  # 1 workday: the next working day's close
    assert any("市场卫生问题" in subject for subject in dispatched_mails(fresh_inbox))
    replay = client.post(path, data=form)
    assert replay.status_code == 200 and len(cases_in(session)) == 1


def test_a_passed_spot_check_files_nothing(
    client: TestClient, session: Session, ctx: Context, item: Occurrence
) -> None:
    path = path_of(ctx, item, local("2026-02-03T10:00"))
    response = client.post(path, data={"subject": "wuxing-feiying-market", "passed": "1", "form_id": "chk-2"})
    assert response.status_code == 200 and "已生成案件" not in response.text and cases_in(session) == []


def test_a_failed_unannounced_site_check_becomes_a_site_dust_case(
    client: TestClient, session: Session, ctx: Context, fresh_inbox: Inbox
) -> None:
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=SITES)
    query = select(Occurrence).where(col(Occurrence.unit_id) == "wuxing-ecology").order_by(col(Occurrence.due_at))
    check = session.execute(query).scalars().first()
    assert check is not None
    path = path_of(ctx, check, local("2026-02-03T10:00"))
    form = client.get(path)
    assert "被抽查工地" in form.text and "吴兴区重点建筑工地（演示）" in form.text
    assert "南浔区重点建筑工地" not in form.text  # a district's checker checks its own district's sites
    data = {"subject": "wuxing-site", "passed": "0", "problem": "渣土未覆盖，道路扬尘", "form_id": "site-1"}
    response = client.post(path, data=data)
    assert response.status_code == 200, response.text
    (case,) = cases_in(session)
    assert f"已生成案件 {case.id}，已派遣给吴兴区重点建筑工地（演示）" in response.text
    assert (case.category_id, case.source, case.reporter) == ("site-dust", "check", "unit:wuxing-ecology")
    item = session.get(Occurrence, case.occurrence_id)
    assert item is not None and item.unit_id == "wuxing-site"
    assert item.due_at == local("2026-02-03T12:00")  # 2 workhours from 10:00 on a working Tuesday
    assert any("工地扬尘" in subject for subject in dispatched_mails(fresh_inbox))


def test_a_finding_category_that_names_no_category_is_a_path_line_error(calendars_dir: Path) -> None:
    duties = calendars_dir / "huzhou" / "duties.yaml"
    duties.write_text(duties.read_text(encoding="utf-8").replace("market-hygiene}", "graffiti}"), encoding="utf-8")
    problems = check_calendars(calendars_dir)
    assert any(p.startswith(f"{duties}:") and "finding_category: unknown category 'graffiti'" in p for p in problems), (
        problems
    )


# ---------------------------------------------------------------- the CLI


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


AT = "2026-03-03T09:00+08:00"


def test_the_cli_files_lists_shows_assigns_and_verifies(
    session: Session, ctx: Context, fresh_inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "duty-officer")
    code, out, _ = run("case", "new", "--category", "market-litter", "--place", "飞英农贸市场东门", "--at", AT)
    assert code == 0 and "已受理 案件 1" in out and "已派遣给 飞英农贸市场" in out and "2026-03-03 09:30" in out
    assert dispatched_mails(fresh_inbox)
    code, out, _ = run("case", "new", "--category", "road-damage", "--place", "人民广场", "--note", "坑", "--at", AT)
    assert code == 0 and "已受理 案件 2" in out and "待派遣" in out
    code, out, _ = run("case", "list", "--status", "undispatched", "--json", "--at", AT)
    rows = json.loads(out)
    assert [row["id"] for row in rows] == [2] and rows[0]["reporter"] == "cli:duty-officer"
    code, out, _ = run("case", "assign", "2", "--unit", "wuxing-feiying", "--reason", "人民广场属飞英街道", "--at", AT)
    assert code == 0 and "已派遣给" in out, out
    code, out, _ = run("case", "show", "2", "--json", "--at", AT)
    shown = json.loads(out)
    assert (shown["unit"], shown["status"], shown["dispatches"]) == ("wuxing-feiying", "handling", 1)
    code, _, err = run("case", "verify", "1", "--pass", "--at", AT)
    assert code == 1 and "尚未报告处置" in err and "Traceback" not in err
    case = session.get(Case, 1)
    assert case is not None
    confirm(session, occurrence_id=case.occurrence_id or 0, note="已清扫", evidence=[], at=local(AT[:16]), client="t")
    code, out, _ = run("case", "verify", "1", "--pass", "--at", "2026-03-03T09:20+08:00")
    assert code == 0 and "已结案" in out
    code, out, _ = run("case", "list", "--status", "closed", "--json", "--at", "2026-03-03T09:21+08:00")
    assert [row["id"] for row in json.loads(out)] == [1]
    code, out, _ = run("case", "show", "1", "--at", "2026-03-03T09:21+08:00")
    assert code == 0 and "状态：已结案" in out and "上报人：cli:duty-officer" in out


def test_the_cli_refuses_in_chinese_without_a_traceback(session: Session, ctx: Context) -> None:
    code, _, err = run("case", "new", "--category", "graffiti", "--place", "x", "--at", AT)
    assert code == 1 and "没有编号为 graffiti 的案件类别" in err and "Traceback" not in err
    code, _, err = run("case", "show", "42")
    assert code == 1 and "没有编号为 42 的案件" in err
    code, _, err = run("case", "list", "--status", "lost")
    assert code == 2 and "--status 只能是" in err
    code, _, err = run("case", "verify", "1")
    assert code == 2 and "--pass 或 --fail" in err
    code, _, err = run("preview", "market-litter")
    assert code == 2 and "是案件类别，没有排期" in err
    assert cases_in(session) == []


def test_the_cli_makes_an_inspector_link_that_opens_the_form(
    client: TestClient, session: Session, ctx: Context
) -> None:
    add_account(session, "walker", "inspector")
    code, out, err = run("user", "inspector-link", "walker", "--at", "2026-02-01T09:00+08:00")
    assert code == 0 and "/i/" in out and "90 天" in err
    assert client.get("/i/" + out.strip().rsplit("/i/", 1)[1]).status_code == 200
    code, _, err = run("user", "inspector-link", "nobody")
    assert code == 1 and "没有账号 nobody" in err
