"""Keyword-only data access over the ledger."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import case, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import ClauseElement
from sqlmodel import Session, SQLModel

from store.models import STATUSES, AuditEvent, Delivery, Duty, Occurrence, Setting, Unit, status_condition


def insert_ignoring_conflicts(session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> bool:
    """Insert rows, skipping any that a unique key already holds: safe when two planners run at once.

    For a single row, returns whether it was inserted.
    """
    if not rows:
        return False
    dialect = session.get_bind().dialect.name
    if len(rows) > 1:
        session.execute(_insert_ignoring(dialect, model.__table__), list(rows))  # type: ignore[attr-defined]
        return False
    # RETURNING says whether the row went in; rowcount does not on every driver (psycopg reports -1).
    statement = _insert_ignoring(dialect, model.__table__, returning=True)  # type: ignore[attr-defined]
    return session.execute(statement, dict(rows[0])).first() is not None


def upsert(
    session: Session,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    columns: Sequence[str],
) -> None:
    """Insert rows; where ``key`` is taken, overwrite only ``columns``. Safe when two processes write the same row at
    once, and the columns not named (a unit's link_version, raised by a manager) keep their value."""
    if not rows:
        return
    statement = _insert_of(session.get_bind().dialect.name)(model.__table__)  # type: ignore[attr-defined]
    changes = {column: statement.excluded[column] for column in columns}
    session.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changes), list(rows))


@lru_cache(maxsize=64)
def _insert_ignoring(dialect: str, table: Any, *, returning: bool = False) -> Any:
    """Built once per table: constructing it cost a confirmation more than running it."""
    statement = _insert_of(dialect)(table).on_conflict_do_nothing()
    return statement.returning(next(iter(table.primary_key.columns))) if returning else statement


def claim(
    session: Session, model: type[SQLModel], *, row_id: int, expect: dict[str, Any], values: dict[str, Any]
) -> bool:
    """Conditional update: change the row only if it still holds ``expect``. True when this caller won it."""
    table = model.__table__  # type: ignore[attr-defined]
    conditions = [table.c.id == row_id]
    for column, value in expect.items():
        conditions.append(table.c[column].is_(None) if value is None else table.c[column] == value)
    result = session.execute(update(table).where(*conditions).values(**values))
    won = result.rowcount == 1  # type: ignore[attr-defined]
    if won:
        _refresh_loaded(session, model, row_id, values)
    return won


def claim_many(
    session: Session, model: type[SQLModel], *, expect: str, changes: dict[int, tuple[Any, dict[str, Any]]]
) -> set[int]:
    """``claim`` for many rows: row id → (the value column ``expect`` must still hold, the new values). Returns the
    ids this caller won; a row another worker changed first is not among them.

    Rows that expect the same value and take the same values share one ``UPDATE … WHERE id IN (…) AND expect = …
    RETURNING id``. A tick's rows mostly do (every unit of a period shares its reminder times), so a batch costs a
    few statements, each compiled once and cached, rather than one per row.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for row_id, (expected, values) in changes.items():
        key = (expected, *((column, _hashable(value)) for column, value in sorted(values.items())))
        groups.setdefault(key, []).append(row_id)
    table = model.__table__  # type: ignore[attr-defined]
    won: set[int] = set()
    for (expected, *_), ids in groups.items():
        shared = changes[ids[0]][1]
        condition = table.c[expect].is_(None) if expected is None else table.c[expect] == expected
        statement = update(table).where(table.c.id.in_(ids), condition).values(shared).returning(table.c.id)
        won.update(session.execute(statement).scalars())
    for row_id in won:
        _refresh_loaded(session, model, row_id, changes[row_id][1])
    return won


def claim_rows(
    session: Session,
    model: type[SQLModel],
    *,
    expect: Sequence[str],
    changes: dict[int, tuple[tuple[Any, ...], dict[str, Any]]],
) -> set[int]:
    """``claim_many`` over several columns: row id → (the values the ``expect`` columns must still hold, in that
    order, and the new values). Returns the ids this caller won.

    Rows taking the same new values share one ``UPDATE … WHERE id IN (…) AND (id, a, b) IN ((…), …) RETURNING id``:
    a batch whose rows each expect their own values (an escalation clock per item) still costs one statement. The
    ``id IN`` keeps the primary-key index in use. A row expecting NULL somewhere is claimed alone with ``claim``:
    a row value never equals NULL.
    """
    won: set[int] = set()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for row_id, (expected, values) in changes.items():
        if any(value is None for value in expected):
            if claim(session, model, row_id=row_id, expect=dict(zip(expect, expected, strict=True)), values=values):
                won.add(row_id)
            continue
        groups.setdefault(tuple((c, _hashable(v)) for c, v in sorted(values.items())), []).append(row_id)
    table = model.__table__  # type: ignore[attr-defined]
    keys = tuple_(table.c.id, *(table.c[column] for column in expect))
    for ids in groups.values():
        held = [(row_id, *changes[row_id][0]) for row_id in ids]
        condition = (table.c.id.in_(ids), keys.in_(held))
        statement = update(table).where(*condition).values(changes[ids[0]][1]).returning(table.c.id)
        won.update(session.execute(statement).scalars())
    for row_id in won:
        _refresh_loaded(session, model, row_id, changes[row_id][1])
    return won


def _hashable(value: Any) -> Any:
    """A JSON column's list as a tuple, so rows taking equal values share one statement."""
    return tuple(value) if isinstance(value, list) else value


def _refresh_loaded(session: Session, model: type[SQLModel], row_id: int, values: dict[str, Any]) -> None:
    """Keep an instance already loaded in this session in step with a Core update, so nobody reads stale state."""
    loaded = session.identity_map.get(session.identity_key(model, row_id))
    if loaded is None:
        return
    for column, value in values.items():
        if isinstance(value, ClauseElement):
            session.expire(loaded, [column])
        else:
            set_committed_value(loaded, column, value)


def audit(
    session: Session, *, at: datetime, actor: str, action: str, occurrence_id: int | None = None, **detail: Any
) -> None:
    """Record one audit event, written at once with Core: through the ORM, the flush at commit cost a confirmation
    a third of its time."""
    audit_many(
        session, [{"at": at, "actor": actor, "action": action, "occurrence_id": occurrence_id, "detail": detail}]
    )


def audit_many(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Audit events (``at``, ``actor``, ``action``, ``occurrence_id``, ``detail``) in one statement."""
    if events:
        session.execute(_AUDIT_INSERT, list(events))


_AUDIT_INSERT = insert(AuditEvent.__table__)  # type: ignore[attr-defined]


def get_value(session: Session, *, key: str) -> str | None:
    # Read through to the store: another worker may have written it since this session last looked.
    row = session.get(Setting, key, populate_existing=True)
    return None if row is None else row.value


def put_value(session: Session, *, key: str, value: str) -> None:
    """Insert or overwrite in one statement, so two workers writing the same key at once both succeed."""
    insert_ = _insert_of(session.get_bind().dialect.name)
    statement = insert_(Setting.__table__).values(key=key, value=value)  # type: ignore[attr-defined]
    session.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def _insert_of(dialect: str) -> Any:
    """The INSERT with ON CONFLICT of the store's dialect."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def find_occurrences(
    session: Session,
    *,
    at: datetime,
    overdue_first: bool = False,
    limit: int | None = None,
    offset: int = 0,
    sort: str = "",
    **filters: Any,
) -> list[tuple[Occurrence, Duty, Unit]]:
    """Occurrences with their duty and unit; ``filters`` are those of ``_occurrence_query`` (unit, duty, status…).

    ``sort`` is a key of SORTS, "-" in front for descending; without it, the order ``overdue_first`` says.
    """
    query = _occurrence_query(select(Occurrence, Duty, Unit), at=at, **filters)
    query = _ordered(query, at=at, overdue_first=overdue_first, sort=sort)
    if limit:
        query = query.limit(limit).offset(offset)
    # populate_existing: rows already loaded in this session are refreshed, so a listing never shows stale state.
    rows = session.execute(query.execution_options(populate_existing=True)).all()
    return [(row[0], row[1], row[2]) for row in rows]


def stream_occurrences(
    session: Session,
    columns: Sequence[Any],
    *,
    at: datetime,
    chunk: int = 2000,
    overdue_first: bool = False,
    sort: str = "",
    **filters: Any,
) -> Iterator[Any]:
    """``columns`` of the occurrences ``find_occurrences`` would give, in its order, fetched ``chunk`` rows at a time
    (a server-side cursor on PostgreSQL): a full export of a million rows never holds them all. Plain rows, no ORM
    objects; ``status_column(at)`` is the derived status as a column."""
    query = _occurrence_query(select(*columns), at=at, **filters)
    query = _ordered(query, at=at, overdue_first=overdue_first, sort=sort)
    yield from session.execute(query.execution_options(yield_per=chunk))


def status_column(at: datetime) -> Any:
    """``Occurrence.status_at(at)`` as a SQL expression (the conditions of ``status_condition`` exclude each other)."""
    return case(*((status_condition(status, at), status) for status in STATUSES), else_="scheduled")


def _ordered(query: Any, *, at: datetime, overdue_first: bool, sort: str) -> Any:
    """``sort`` is a key of SORTS, "-" in front for descending; without it, the order ``overdue_first`` says."""
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    if sort.lstrip("-") in SORTS:
        column = SORTS[sort.lstrip("-")]()
        return query.order_by(column.desc() if sort.startswith("-") else column, col.id)
    if overdue_first:  # what needs a manager first: overdue and escalated, highest level, longest overdue
        overdue = status_condition("overdue", at)
        return query.order_by(case((overdue, 0), else_=1), col.level.desc(), col.due_at, col.id)
    return query.order_by(col.due_at, col.duty_id, col.unit_id)


# The desk's sortable columns.
SORTS: dict[str, Any] = {
    "id": lambda: Occurrence.__table__.c.id,  # type: ignore[attr-defined]
    "title": lambda: Occurrence.__table__.c.title,  # type: ignore[attr-defined]
    "unit": lambda: Unit.__table__.c.name,  # type: ignore[attr-defined]
    "due": lambda: Occurrence.__table__.c.due_at,  # type: ignore[attr-defined]
    "level": lambda: Occurrence.__table__.c.level,  # type: ignore[attr-defined]
}


def count_matching(session: Session, *, at: datetime, **filters: Any) -> int:
    """How many occurrences ``find_occurrences`` would give without a limit."""
    return int(session.execute(_occurrence_query(select(func.count()), at=at, **filters)).scalar_one())


def count_occurrences(session: Session, *, at: datetime, by: str, **filters: Any) -> dict[Any, int]:
    """How many occurrences match ``filters``, per status (``by="status"``) or per level (``by="level"``)."""
    if by == "level":
        col = Occurrence.__table__.c  # type: ignore[attr-defined]
        query = _occurrence_query(select(col.level, func.count()), at=at, **filters).group_by(col.level)
        return {int(level): int(n) for level, n in session.execute(query).all()}
    counts = {}
    for status in STATUSES:
        query = _occurrence_query(select(func.count()), at=at, **{**filters, "status": status})
        counts[status] = int(session.execute(query).scalar_one())
    return counts


def _occurrence_query(
    query: Any,
    *,
    at: datetime,
    occurrence_id: int | None = None,
    unit: str | None = None,
    duty: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
    family: str | None = None,
    district: str | None = None,
    level: int | None = None,
    hide_unannounced: bool = False,
    q: str | None = None,
) -> Any:
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    duties, units = Duty.__table__.c, Unit.__table__.c  # type: ignore[attr-defined]
    query = query.select_from(Occurrence.__table__).join(Duty.__table__, duties.id == col.duty_id)  # type: ignore[attr-defined]
    query = query.join(Unit.__table__, units.id == col.unit_id)  # type: ignore[attr-defined]
    conditions = [
        (occurrence_id is not None, lambda: col.id == occurrence_id),
        (unit, lambda: col.unit_id == unit),
        (duty, lambda: col.duty_id == duty),
        (kind, lambda: duties.kind == kind),
        (family, lambda: duties.family == family),
        (district, lambda: func.coalesce(units.district, units.id) == district),
        (level is not None, lambda: col.level == level),
        # views the inspected could reach never show a check before its day
        (hide_unannounced, lambda: or_(col.visible_from.is_(None), col.visible_from <= at)),
        (status, lambda: status_condition(status or "", at)),
        (start, lambda: col.due_at >= start),
        (end, lambda: col.due_at < end),
        (q, lambda: _matching(q or "", col, units)),
    ]
    for wanted, condition in conditions:
        if wanted:
            query = query.where(condition())
    return query


def _matching(text: str, col: Any, units: Any) -> Any:
    """A search box: an item's id, or words in its title or its unit's name (LIKE, with % and _ taken literally)."""
    words = text.strip()
    found = or_(col.title.contains(words, autoescape=True), units.name.contains(words, autoescape=True))
    return or_(col.id == int(words), found) if re.fullmatch(r"[0-9]{1,18}", words) else found


def occurrences_json(session: Session, *, at: datetime, zone: Any, **filters: Any) -> list[dict[str, Any]]:
    """``find_occurrences`` as the JSON of interface contract v1: what the CLI, the API and the desk list."""
    return [occurrence_json(o, d, u, at=at, zone=zone) for o, d, u in find_occurrences(session, at=at, **filters)]


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)


def day_bound(value: date | None, zone: Any, *, end: bool = False) -> datetime | None:
    """Local midnight starting ``value`` (or, for an end bound, the day after), for date filters.

    Raises ValueError for a day outside 1900–2999: such a bound is a typing mistake, and near year 1 or 9999 the
    conversion to UTC overflows.
    """
    if value is None:
        return None
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"日期超出范围（{FIRST_DAY}–{LAST_DAY}）：{value}")
    return datetime.combine(value + timedelta(days=1 if end else 0), datetime.min.time(), tzinfo=zone)


def count_rows(session: Session, model: type[SQLModel]) -> int:
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def occurrence_json(occurrence: Occurrence, duty: Duty, unit: Unit, *, at: datetime, zone: Any) -> dict[str, Any]:
    """The JSON of an occurrence, as interface contract v1 names its fields."""
    return {
        "id": occurrence.id,
        "duty": occurrence.duty_id,
        "family": duty.family,
        "title": occurrence.title,
        "clause": duty.clause,
        "unit": occurrence.unit_id,
        "unit_name": unit.name,
        "district": unit.district or unit.id,
        "period": occurrence.period,
        "due": occurrence.due_at.astimezone(zone).isoformat(),
        "status": occurrence.status_at(at),
        "level": occurrence.level,
        "kind": "rectification" if occurrence.finding_id else duty.kind,
        "finding": occurrence.finding_id,
        "case": occurrence.case_id,
        "required": occurrence.required,
        "achieved": occurrence.achieved,
        "level_at": _iso(occurrence.level_at, zone),
        "done_at": _iso(occurrence.done_at, zone),
        "flags": occurrence.flags,
        "visible_from": _iso(occurrence.visible_from, zone),
    }


def _iso(value: datetime | None, zone: Any) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def target_progress(session: Session, *, at: datetime, zone: Any) -> list[dict[str, Any]]:
    """Each target occurrence with what is achieved and what a steady pace would have achieved by ``at``."""
    items = []
    for occurrence, duty, unit in find_occurrences(session, at=at, kind="target"):
        mode = duty.spec["target"].get("mode", "cumulative")
        # A level (亮灯率 98 %) is judged against its goal as it stands: a pro-rata line means nothing for a rate.
        expected = occurrence.required if mode == "level" else _pro_rata(occurrence, at)
        item = occurrence_json(occurrence, duty, unit, at=at, zone=zone)
        item.update(
            measure=duty.spec["target"]["measure"],
            mode=mode,
            expected=expected,
            on_track=occurrence.achieved >= expected,
            start=occurrence.starts_at.astimezone(zone).date().isoformat(),
        )
        items.append(item)
    return items


def _pro_rata(occurrence: Occurrence, at: datetime) -> float:
    """What a steady pace from the period's start would have achieved by ``at``."""
    span = (occurrence.due_at - occurrence.starts_at).total_seconds()
    elapsed = min(max((at - occurrence.starts_at).total_seconds(), 0.0), span)
    return round(occurrence.required * elapsed / span, 1) if span > 0 else occurrence.required


def find_deliveries(session: Session, *, statuses: Sequence[str], limit: int | None = 200) -> list[Delivery]:
    """The newest deliveries in ``statuses``; all of them when ``limit`` is None."""
    col = Delivery.__table__.c  # type: ignore[attr-defined]
    query = select(Delivery).where(col.status.in_(statuses)).order_by(col.id.desc()).limit(limit)
    return list(session.execute(query.execution_options(populate_existing=True)).scalars())


def count_deliveries(session: Session, *, statuses: Sequence[str]) -> int:
    col = Delivery.__table__.c  # type: ignore[attr-defined]
    return int(session.execute(select(func.count()).where(col.status.in_(statuses))).scalar_one())


def delivery_json(delivery: Delivery, *, zone: Any) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "occurrence": delivery.occurrence_id,
        "stage": delivery.stage,
        "unit": delivery.unit_id,
        "channel": delivery.channel,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": _iso(delivery.next_attempt_at, zone),
        "sent_at": _iso(delivery.sent_at, zone),
        "idempotency_key": delivery.idempotency_key,
        "reason": _last_reason(delivery.log),
    }


def _last_reason(log: str) -> str:
    """The last warning apprise logged, with the low-level exception behind it: the reason a person needs."""
    lines = log.splitlines()
    warning = next((ln for ln in reversed(lines) if " - WARNING - " in ln or " - ERROR - " in ln), "")
    detail = next((ln for ln in reversed(lines) if "Exception" in ln), "")
    parts = [ln.split(" - ", 2)[-1] for ln in (warning, detail) if ln]
    return " ".join(parts)[:400] or (lines[-1][:400] if lines else "")
