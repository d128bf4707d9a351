"""Fuzzing the web app from its own OpenAPI document: no input, however odd, may get a 5xx.

Schemathesis reads ``/openapi.json`` from the app in process (ASGI, no server) and runs every operation against a
ledger with real data: February's core duties planned and escalated twice, reports confirmed (one with a photo),
one item waived, one parked, one report failed at 核查, deliveries sent, failed and of unknown outcome. Its hooks
often swap generated path parameters for real ones (occurrence ids, a report's photo, delivery ids, signed links)
or for the edges of a 64-bit id, put the right CSRF token in desk forms, make action bodies plausible and query
values tricky, so actions reach real rows and sometimes succeed, not only 404, 409 or 422. It runs with a city token
(coverage and fuzzing phases) and with a district token for wuxing (fuzzing); the desk is logged in as the same
manager. Two plain tests add what the document cannot drive: the desk's action form, which has no schema, and
every query parameter with each of a few values that almost parse.

The clock is frozen and every run is derandomized; nothing sleeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select, update
from sqlmodel import Session, col

from flows import actions, steps
from flows.steps import Context
from store.models import Confirmation, Delivery, Occurrence, Unit
from tests.conftest import local
from tests.desk_support import api_headers
from tests.test_steps import CORE
from tests.web_support import Clock, png
from web import auth
from web.app import app, clock

NOW = local("2026-02-16T10:00")  # after both escalations: W06 and W07 overdue, the month's greening not yet due
CSRF = "fuzz-csrf-token-0123456789"
SCOPES = {"city": None, "district": "wuxing"}
API_ACTION = "/api/occurrences/{occurrence_id}/{action}"
ACTION_FIELDS = ["reason", "due", "review_on", "held_on", "attendees", "minutes", "verdict", "note"]
# Values that almost parse, or parse to the very edge: "¹".isdigit() is true and int("¹") raises; the first and the
# last day Python knows are days, but local midnight of the one and the day after the other are not datetimes.
TRICKY = ["", " ", "-1", "¹", "１２", "9" * 30, "2026-02-30", "0001-01-01", "9999-12-31", "\x00"]
EXAMPLES = 25  # per operation in schemathesis' fuzzing phase; its coverage phase adds the cases the schema defines
ACTION_EXAMPLES = 80  # the API's actions need a real item, in the right state, and a fitting body to succeed
FUZZ_SETTINGS = settings(  # no max_examples here: schemathesis' config sets them per operation
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class Ledger:
    """What exists for the fuzzer to aim at, how to get in, and which answers it got."""

    scope: str  # city or district
    headers: dict[str, str]
    cookies: dict[str, str]
    occurrence_ids: list[int]
    visible_ids: list[int]  # the ones this manager may see
    confirmation_ids: list[int]
    delivery_ids: list[int]
    photos: list[tuple[int, str]]  # (occurrence id, stored photo name)
    link_tokens: list[str]
    unit_tokens: list[str]
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    reached: set[str] = field(default_factory=set)  # operations that found a real row: 2xx, 3xx or a refusal


def _ids(session: Session, query: Any) -> list[int]:
    return [int(i) for i in session.execute(query).scalars()]


def _token(link: str) -> str:
    return link.rsplit("/", 1)[1]


def _fill(session: Session, ctx: Context) -> dict[str, Any]:
    """February's core duties, escalated twice, with reports, a photo, a waiver, a 挂账, a failed 核查, sends."""
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=CORE)
    steps.escalate(session, ctx, at=local("2026-02-09T17:00"))
    steps.escalate(session, ctx, at=local("2026-02-14T17:00"))
    wuxing = select(col(Unit.id)).where(col(Unit.district) == "wuxing")
    by_id = select(col(Occurrence.id)).order_by(col(Occurrence.id))
    ours = _ids(session, by_id.where(col(Occurrence.unit_id).in_(wuxing)))
    theirs = _ids(session, by_id.where(col(Occurrence.unit_id).not_in(wuxing)))
    occurrences = list(session.execute(select(Occurrence).order_by(col(Occurrence.id))).scalars())
    links = {o.id: _token(steps.confirmation_link(ctx.settings, ctx.secret, o, at=NOW)) for o in occurrences}
    with TestClient(app) as client:  # one report with a photo, through the unit's own form
        sent = client.post(f"/c/{links[ours[0]]}", data={"note": "见照片"}, files={"evidence": ("a.png", png())})
        assert sent.status_code == 200, sent.text
    for occurrence_id in (ours[1], ours[2], theirs[0], theirs[1]):
        steps.confirm(session, occurrence_id=occurrence_id, note="已完成", evidence=[], at=NOW, client="fuzz")
    actor = "user:setup"
    actions.waive(session, occurrence_id=ours[3], reason="并入专项整治", actor=actor, at=NOW)
    actions.waive(session, occurrence_id=theirs[2], reason="并入专项整治", actor=actor, at=NOW)
    actions.park(
        session, occurrence_id=ours[4], review_on=date(2026, 3, 2), reason="春节", actor=actor, at=NOW, zone=ctx.zone
    )
    reports = list(session.execute(select(Confirmation).order_by(col(Confirmation.id))).scalars())
    actions.verify(
        session,
        occurrence_id=reports[-1].occurrence_id,
        confirmation_id=reports[-1].id or 0,
        passed=False,
        note="现场仍有垃圾",
        actor=actor,
        at=NOW,
    )
    deliveries = _ids(session, select(col(Delivery.id)).order_by(col(Delivery.id)))
    assert len(deliveries) >= 3, "the escalations queued too few messages"
    for delivery_id, status in zip(deliveries, ("sent", "failed", "unknown"), strict=False):  # as if sent once
        session.execute(update(Delivery).where(col(Delivery.id) == delivery_id).values(status=status, log="fuzz"))
    session.commit()
    session.expire_all()
    return {
        "occurrence_ids": [*ours, *theirs],
        "wuxing_ids": ours,
        "confirmation_ids": [r.id for r in reports],
        "delivery_ids": deliveries,
        "photos": [(r.occurrence_id, name) for r in reports for name in r.evidence],
        "link_tokens": list(links.values()),
        "unit_tokens": [
            _token(steps.unit_link(ctx.settings, ctx.secret, unit_id, at=NOW))
            for unit_id in sorted({o.unit_id for o in occurrences})
        ],
    }


@pytest.fixture(params=sorted(SCOPES))
def ledger(request: pytest.FixtureRequest, session: Session, ctx: Context) -> Iterator[Ledger]:
    """The filled ledger, with an API token and a desk login for a city or a district (wuxing) manager."""
    app.dependency_overrides[clock] = Clock(NOW)
    try:
        data = _fill(session, ctx)
        username = f"fuzz-{request.param}"
        headers = api_headers(session, username, district=SCOPES[request.param])
        user = auth.find_user(session, username)
        assert user is not None
        cookies = {auth.SESSION_COOKIE: auth.session_cookie(ctx.secret, user), auth.CSRF_COOKIE: CSRF}
        ours = data.pop("wuxing_ids")
        visible = ours if SCOPES[request.param] else data["occurrence_ids"]
        yield Ledger(scope=request.param, headers=headers, cookies=cookies, visible_ids=visible, **data)
    finally:
        app.dependency_overrides.pop(clock, None)


# ---------------------------------------------------------------- every operation in /openapi.json


def _or_real(generated: Any, real: list[Any]) -> st.SearchStrategy[Any]:
    """Mostly a real value, else the generated one or, for an id, an edge of a 64-bit integer column."""
    edges = [0, -1, 2**63 - 1, 2**63, 2**64] if isinstance(generated, int) else [generated]
    real_one = st.sampled_from(real or [generated])
    return st.one_of(real_one, real_one, st.just(generated), st.sampled_from(edges))


def _day(first: int, last: int) -> st.SearchStrategy[str]:
    """A day from `first` to `last` days after the frozen clock's."""
    return st.integers(first, last).map(lambda days: (NOW + timedelta(days=days)).date().isoformat())


def _plausible_action(ledger: Ledger) -> st.SearchStrategy[dict[str, Any]]:
    """Every field an action could need, each a value it could accept: the item's state decides the rest."""
    words = st.sampled_from(["春节后补做", "现场已整改", "张三、李四", "约谈纪要：限期整改", " "])
    days = {"due": _day(-2, 28), "review_on": _day(-2, 28), "held_on": _day(-10, 3)}  # the edges fail
    fields = {name: days.get(name, words) for name in ACTION_FIELDS} | {"verdict": st.sampled_from(["pass", "fail"])}
    fields["confirmation_id"] = st.sampled_from(ledger.confirmation_ids)
    return st.fixed_dictionaries(fields)


def _aim(schema: schemathesis.BaseSchema, ledger: Ledger) -> None:
    """Hooks on this schema only: real ids and links in paths, the CSRF token in forms, plausible action bodies."""

    @schema.hook
    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        if not path_parameters or context.operation is None:
            return st.just(path_parameters)
        generated = dict(path_parameters)
        if {"occurrence_id", "name"} <= set(generated) and ledger.photos:  # a photo is found under its own item only
            photos = st.sampled_from(ledger.photos).map(lambda p: {**generated, "occurrence_id": p[0], "name": p[1]})
            return st.one_of(st.just(generated), photos)
        real: dict[str, list[Any]] = {
            "occurrence_id": ledger.visible_ids + ledger.occurrence_ids,  # out of scope answers 404
            "delivery_id": ledger.delivery_ids,
            "token": ledger.unit_tokens if context.operation.path.startswith("/u/") else ledger.link_tokens,
        }
        choices = {k: _or_real(v, real[k]) if k in real else st.just(v) for k, v in generated.items()}
        return st.fixed_dictionaries(choices)

    @schema.hook
    def flatmap_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        if not query:
            return st.just(query)
        tricky = st.fixed_dictionaries({name: st.sampled_from(TRICKY) for name in query})
        return st.one_of(st.just(query), tricky.map(lambda values: {**query, **values}))

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        if not isinstance(body, dict) or context.operation is None:
            return st.just(body)
        path = context.operation.path
        if "csrf" in body or path.startswith("/desk/"):
            return st.sampled_from([body, {**body, "csrf": CSRF}])
        if path == API_ACTION:
            plausible = _plausible_action(ledger).map(lambda extra: {**body, **extra})
            return st.one_of(plausible, plausible, st.just(body))
        if path.startswith("/c/"):  # a count a unit could report, without the generated non-images
            plain = {k: v for k, v in body.items() if k != "evidence"}
            return st.sampled_from([body, {**plain, "amount": "1"}, {**plain, "amount": "2.5", "note": "见现场"}])
        return st.just(body)


@pytest.fixture
def api_schema(request: pytest.FixtureRequest, ledger: Ledger) -> Iterator[schemathesis.BaseSchema]:
    # schemathesis 4.32's from_fixture renames the running node through `_nodeid`, which pytest 9.2's nodes lack.
    if not hasattr(request.node, "_nodeid"):
        setattr(request.node, "_nodeid", request.node.nodeid)  # noqa: B010
    # Schemathesis' coverage phase (boundaries, wrong types, missing fields, other methods) checks validation, which
    # is the same for every manager: the city run has it, the district run fuzzes its real rows only. Two methods
    # no route has are enough to see that an unsupported one gets 405, not 500.
    coverage = {"enabled": ledger.scope == "city", "unexpected-methods": ["DELETE", "PATCH"]}
    actions_config = {"include-path": API_ACTION, "generation": {"max-examples": ACTION_EXAMPLES}}
    config = schemathesis.Config.from_dict(
        {"generation": {"max-examples": EXAMPLES}, "phases": {"coverage": coverage}, "operations": [actions_config]}
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    _aim(schema, ledger)
    yield schema
    wanted = {"GET /api/occurrences/{occurrence_id}", f"POST {API_ACTION}", "POST /c/{token}", "GET /u/{token}"}
    wanted |= {"GET /desk/items/{occurrence_id}", "GET /desk/items/{occurrence_id}/evidence/{name}"}
    missed = sorted(wanted - ledger.reached)
    assert not missed, f"the fuzzer never reached a real row in {missed}; it got {sorted(ledger.answers.items())}"


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case, ledger: Ledger) -> None:
    """Every operation, with generated (and aimed) input: never a 5xx, and every answer as the document says."""
    response = case.call(headers=ledger.headers, cookies=ledger.cookies)
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    ledger.answers[operation, response.status_code] += 1
    # An action the item's state refuses answers 409 with the reason: it reached a real row all the same.
    refused = case.operation.path == API_ACTION and response.status_code == 409
    if refused or 200 <= response.status_code < 400:
        ledger.reached.add(operation)
    checks: list[CheckFunction] = [not_a_server_error, response_schema_conformance]
    case.validate_response(response, checks=checks, headers=ledger.headers)


# ---------------------------------------------------------------- the desk's action form (not in the schema)


def _form_value() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TRICKY), st.text())


def test_desk_action_forms_never_get_a_server_error(ledger: Ledger) -> None:
    """POST /desk/items/{id}/{action} reads its form by hand, so it is fuzzed here: real items, real and odd actions."""
    client = TestClient(app, cookies=ledger.cookies)
    visible, anyone = st.sampled_from(ledger.visible_ids), st.sampled_from(ledger.occurrence_ids)
    real_action = st.sampled_from(sorted(actions.ACTIONS))
    plausible = _plausible_action(ledger).map(lambda fields: {"csrf": CSRF, **fields})
    odd = st.fixed_dictionaries(
        {"csrf": st.one_of(st.just(CSRF), st.text())},
        optional={name: _form_value() for name in ["confirmation_id", *ACTION_FIELDS]},
    )
    answers: Counter[tuple[str, int]] = Counter()

    @settings(FUZZ_SETTINGS, max_examples=150)
    @given(
        occurrence_id=st.one_of(visible, visible, anyone, st.integers(-(2**64), 2**64)),  # others' items are 404
        action=st.one_of(real_action, real_action, real_action, st.text(min_size=1)),
        form=st.one_of(plausible, plausible, odd),
    )
    def post(occurrence_id: int, action: str, form: dict[str, Any]) -> None:
        path = f"/desk/items/{occurrence_id}/{quote(action, safe='')}"
        response = client.post(path, data=form, follow_redirects=False)
        answers[action if action in actions.ACTIONS else "?", response.status_code] += 1
        assert response.status_code < 500, response.text

    post()
    assert any(code == 303 for _, code in answers), f"no action on the desk ever succeeded: {answers}"


# ---------------------------------------------------------------- every query parameter, with values that almost parse


@pytest.mark.parametrize("ledger", ["city"], indirect=True)  # a district's filters are the same code
def test_query_values_that_almost_parse_never_get_a_server_error(ledger: Ledger) -> None:
    """Each query parameter of every list, one at a time, with each of TRICKY: all of them, not a sample."""
    document = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for result in document.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if operation.path_parameters:
            continue  # the list pages and their filters; items by id are fuzzed above
        for name, value in [(p.name, value) for p in operation.query for value in TRICKY]:
            case = operation.Case(query={name: value})
            try:  # the app's own exception comes through in process, before any 500 could be checked
                response = case.call(headers=ledger.headers, cookies=ledger.cookies)
                case.validate_response(response, checks=[not_a_server_error], headers=ledger.headers)
            except Exception as failure:
                failures.append(f"{operation.label} ?{name}={value!r}: {type(failure).__name__}: {failure}")
    assert not failures, "\n".join(failure.splitlines()[0] for failure in failures)
