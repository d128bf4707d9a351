"""Issue 20, finding 4: revoking binds the item (or the unit), not one token.

A revoked item gets no link from anyone, not the CLI, not the unit's page and not a reminder or notice, until a
manager re-issues one; a unit's page links can be revoked as a whole.
"""

from __future__ import annotations

import re
from datetime import datetime

from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import select
from sqlmodel import Session, col
from typer.testing import CliRunner

from flows import steps
from flows.cli import app
from flows.steps import Context
from store.models import AuditEvent, Delivery, Occurrence, Unit
from tests.conftest import local
from tests.test_steps import occurrence, plan_february
from tests.web_support import Clock, ledger_state, path_of
from web.tokens import UNIT_SALT, make_token, read_token, read_unit_token

AT = "2026-02-03T10:00"  # the web tests' frozen clock (tests/web_support.py)
REVOKED_NOTE = "该事项的链接已被管理部门作废，请联系市城管办重新下发"  # the shipped programme's office
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--at", AT])
    return result.exit_code, result.stdout, result.stderr


def local_path(url: str) -> str:
    return url[url.index("/", len("http://")) :].strip()


def unit_path(ctx: Context, unit_id: str, at: datetime) -> str:
    """A unit link as every message carried one before its unit's links were first revoked (version 0)."""
    return local_path(steps.unit_link(ctx.settings, ctx.secret, unit_id, at=at))


def actions(session: Session) -> list[str]:
    return [e.action for e in session.execute(select(AuditEvent).order_by(col(AuditEvent.id))).scalars()]


def test_a_revoked_item_gets_no_link_anywhere_until_a_manager_reissues(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    old = path_of(ctx, item, now.at)
    page_of_unit = unit_path(ctx, "wuxing-msb", now.at)
    assert old in client.get(page_of_unit).text

    code, out, err = run("link", str(item.id), "--revoke")
    assert code == 0 and out == "" and "已作废" in err and f"duties link {item.id} --reissue" in err
    session.refresh(item)
    assert item.links_revoked and item.link_version == 1
    before = ledger_state(session)
    assert client.get(old).status_code == 410 and "链接已作废" in client.get(old).text
    assert client.post(old, data={"note": "已完成"}).status_code == 410

    # The unit's page still lists the item, with a note and neither a link nor a form.
    listed = client.get(page_of_unit)
    assert listed.status_code == 200 and item.title in listed.text and REVOKED_NOTE in listed.text
    assert "/c/" not in listed.text and 'data-links="revoked"' in listed.text
    # A link of the item's current version, as the unit page used to hand out, is refused as well.
    current = "/c/" + make_token(
        ctx.secret, occurrence_id=item.id or 0, unit_id="wuxing-msb", expires_at=local("2026-03-01T00:00"), version=1
    )
    assert client.get(current).status_code == 410
    assert client.post(current, data={"note": "已完成"}).status_code == 410
    assert ledger_state(session) == before

    code, out, err = run("link", str(item.id))
    assert code == 1 and out == "" and "已被作废" in err and "--reissue" in err

    code, out, err = run("link", str(item.id), "--reissue")
    assert code == 0 and "/c/" in out and "重新下发" in err
    fresh = local_path(out)
    assert client.get(old).status_code == 410  # the links from before the revocation stay void
    assert local_path(out) in client.get(page_of_unit).text
    confirmed = client.post(fresh, data={"note": "已抽查"})
    assert confirmed.status_code == 200 and "已确认完成" in confirmed.text
    assert [a for a in actions(session) if a.startswith("links_")] == ["links_revoked", "links_reissued"]


def test_a_unit_link_can_be_revoked_and_a_new_one_works(
    client: TestClient, session: Session, ctx: Context, item: Occurrence, now: Clock
) -> None:
    old = unit_path(ctx, "wuxing-msb", now.at)
    # Version 0 is not written into the token: links issued before unit versions existed keep their form.
    assert "v" not in URLSafeSerializer(ctx.secret, salt=UNIT_SALT).loads(old.rsplit("/", 1)[1])
    other = unit_path(ctx, "anji-msb", now.at)
    assert client.get(old).status_code == 200

    code, out, err = run("link", "--unit", "wuxing-msb", "--revoke")
    assert code == 0 and "/u/" in out and "已作废" in err
    first = local_path(out)
    gone = client.get(old)
    assert gone.status_code == 410 and "链接已作废" in gone.text
    opened = client.get(first)
    assert opened.status_code == 200 and item.title in opened.text and path_of(ctx, item, now.at) in opened.text
    assert client.get(other).status_code == 200  # another unit's links are untouched

    code, out, _ = run("link", "--unit", "wuxing-msb", "--revoke")
    assert code == 0 and client.get(first).status_code == 410 and client.get(local_path(out)).status_code == 200
    code, out, _ = run("link", "--unit", "wuxing-msb")  # a plain unit link is made with the current version
    assert code == 0 and client.get(local_path(out)).status_code == 200
    session.expire_all()
    unit = session.get(Unit, "wuxing-msb")
    assert unit is not None and unit.link_version == 2
    assert actions(session).count("unit_links_revoked") == 2


def test_reissue_and_revoke_are_refused_where_they_mean_nothing(session: Session, ctx: Context) -> None:
    code, _, err = run("link", "--unit", "wuxing-msb", "--reissue")
    assert code == 2 and "--reissue" in err
    code, _, err = run("link", "--unit", "wuxing-msb", "--revoke", "--reissue")
    assert code == 2 and "不能同时使用" in err


def test_reminders_and_notices_for_a_revoked_item_carry_no_link(session: Session, ctx: Context) -> None:
    plan_february(session, ctx)
    revoked = [
        occurrence(session, "greening-monthly", "anji-greening", "2026-02"),  # a plain reminder
        occurrence(session, "clean-home-street", "wuxing-feiying", "2026-02"),  # one of a digest's three
        occurrence(session, "market-spot-check", "wuxing-msb", "2026-W06"),  # climbs to 交办
    ]
    for item in revoked:
        item.links_revoked, item.link_version = True, item.link_version + 1
    feiying = session.get(Unit, "wuxing-feiying")
    assert feiying is not None
    feiying.link_version = 3  # its page links were revoked three times: messages carry the current version
    session.commit()
    at = local("2026-02-25T09:30")
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))
    steps.remind(session, ctx, at=at)

    single = body_to(session, revoked[0], "anji-greening")
    assert "/c/" not in single and REVOKED_NOTE in single and "/u/" in single
    notice = body_to(session, revoked[2], "wuxing-msb")
    assert "交办" in notice and "/c/" not in notice and REVOKED_NOTE in notice

    digest = body_to(session, None, "wuxing-feiying")
    tokens = re.findall(r"/c/([A-Za-z0-9_.\-]+)", digest)
    claimed = {read_token(ctx.secret, token, at=at).occurrence_id for token in tokens}
    assert len(tokens) == 2 and revoked[1].id not in claimed and digest.count(REVOKED_NOTE) == 1
    (unit_token,) = re.findall(r"/u/([A-Za-z0-9_.\-]+)", digest)
    assert read_unit_token(ctx.secret, unit_token, at=at).version == 3


def body_to(session: Session, item: Occurrence | None, unit_id: str) -> str:
    """The one message queued to ``unit_id`` about ``item``, or its digest (filed under the digest's first item)."""
    query = select(Delivery).where(col(Delivery.unit_id) == unit_id)
    rows = [d for d in session.execute(query).scalars() if item is None or d.occurrence_id == item.id]
    bodies = {d.body for d in rows if (item is None) == d.stage.startswith("digest:")}
    assert len(bodies) == 1, [(d.stage, d.title) for d in rows]  # every contact of the unit gets the same text
    return bodies.pop()
