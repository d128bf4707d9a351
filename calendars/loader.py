"""Load and validate calendar and unit files, reporting every problem as ``path:line: message``."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import apprise
import yaml
from pydantic import BaseModel, ValidationError

from calendars.recurrence import expand, period_starts
from calendars.schema import (
    CalendarFile,
    CategorySpec,
    ContactSpec,
    DutySpec,
    LadderSpec,
    ProgrammeSpec,
    ScoringSpec,
    UnitSpec,
    WorkdayFile,
)
from calendars.workdays import WorkdayCalendar
from notify import plugins

WORKDAY_FOLDER = "workdays"
# The fields of a unit a problem is ever reported at (its contacts have their own locations): keeping every field's
# line of every unit cost a province's units file a hundred megabytes.
UNIT_FIELDS_CITED = frozenset({"district"})
YAML_SUFFIXES = (".yaml", ".yml")
ModelT = TypeVar("ModelT", bound=BaseModel)


class CalendarError(Exception):
    """Raised with every problem found, so one run reports them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


# libyaml's parser, when PyYAML was built with it, composes the nodes about ten times faster than the pure one; the
# constructors and resolvers below are Python either way, so the lines and the scalar rules are the same.
_BaseLoader: Any = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


class _LineLoader(_BaseLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):  # ? [a, b]: 1 would be an unhashable key, a traceback
            raise yaml.MarkedYAMLError(
                "while reading a mapping",
                node.start_mark,
                "a key must be a name, not a list or mapping",
                key_node.start_mark,
            )
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.MarkedYAMLError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
    return mapping


def _construct_timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:  # 2027-02-30 parses as a date shape but is no date: say where
        raise yaml.MarkedYAMLError(None, None, f"invalid date {node.value!r}: {exc}", node.start_mark) from None


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)

# YAML 1.1 reads 17:00 as the base-60 number 1020, 0123 as octal 83, and yes/no/on/off as booleans: what was written
# is then silently something else (a due time of 00:17, a unit id 83, a tag False). Only the forms YAML 1.2 agrees on
# stay numbers and booleans; everything else stays the string that was written, and the schema reads it.
PLAIN_SCALARS = {
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789"),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
}
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in PLAIN_SCALARS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, (_pattern, _first) in PLAIN_SCALARS.items():
    _LineLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


@dataclass(frozen=True, slots=True)  # a province's units file gives hundreds of thousands of them
class Location:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Program:
    """Everything the calendars say: the programme, units, ladders, duties and the working-day calendar."""

    programme: ProgrammeSpec | None = None  # None: a folder that names no guidance (messages then cite bare clauses)
    scoring: ScoringSpec | None = None  # None: the folder sets no assessment (flows/assessment.py)
    units: dict[str, UnitSpec] = field(default_factory=dict)
    ladders: dict[str, LadderSpec] = field(default_factory=dict)
    duties: dict[str, DutySpec] = field(default_factory=dict)  # a case category's duty too (kind "case")
    categories: dict[str, CategorySpec] = field(default_factory=dict)
    workdays: WorkdayCalendar = field(default_factory=WorkdayCalendar)
    where: dict[tuple[str, str], Location] = field(default_factory=dict)
    broken: set[tuple[str, str]] = field(default_factory=set)  # entries with problems: not referenced as unknown

    @cached_property
    def digest(self) -> str:
        """A hash of the programme and of every unit, ladder and duty; computed once, as a loaded programme is never
        changed (a changed file is loaded again as a new one), and it costs a tenth of a second at 10,000 units."""
        parts = [
            self.programme.model_dump(mode="json") if self.programme else None,
            [spec.model_dump(mode="json") for spec in self.units.values()],
            [spec.model_dump(mode="json") for spec in self.ladders.values()],
            [spec.model_dump(mode="json") for spec in self.duties.values()],
            [spec.model_dump(mode="json") for spec in self.categories.values()],
        ]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def is_broken(self, kind: str, item: str) -> bool:
        """Whether a reference to ``item`` may point at an entry that has problems of its own (reported already)."""
        return (kind, item) in self.broken or (kind, "*") in self.broken

    def location(self, kind: str, item: str, field_name: str = "") -> Location:
        """Where an item, or one of its fields, is written; the item's own line when the field is not."""
        found = self.where.get((kind, f"{item}.{field_name}")) if field_name else None
        return found or self.where[(kind, item)]

    def resolve(self, selector: str) -> list[str]:
        """Unit ids for a selector: a unit id, ``kind:X`` or ``tag:X``."""
        if selector.startswith(("kind:", "tag:")):
            return list(self._groups.get(selector, ()))
        return [selector] if selector in self.units else []

    @cached_property
    def _groups(self) -> dict[str, list[str]]:
        """``kind:X`` and ``tag:X`` to their units, built once: every message resolves its audience, and scanning
        10,000 units for each was most of a tick's reminding at that size (docs/benchmarks.md)."""
        groups: dict[str, list[str]] = {}
        for unit in self.units.values():
            for name in (f"kind:{unit.kind}", *(f"tag:{tag}" for tag in dict.fromkeys(unit.tags))):
                groups.setdefault(name, []).append(unit.id)
        return groups

    def resolve_near(self, selector: str, unit_id: str) -> list[str]:
        """Resolve a lead selector for one unit: prefer units in the same district, else city-level ones."""
        found = self.resolve(selector)
        district = self.units[unit_id].district or unit_id
        local = [u for u in found if self.units[u].district == district or u == district]
        if local:
            return local
        return [u for u in found if self.units[u].district is None]

    def assignees(self, duty: DutySpec) -> list[str]:
        return sorted({unit for selector in duty.assignees for unit in self.resolve(selector)})


def load_program(root: Path, *, known_urls: Collection[str] = frozenset()) -> Program:
    """Read every calendar file under ``root``; raise ``CalendarError`` listing all problems.

    ``known_urls``: contact URLs apprise accepted before (calendars/compiled.py), not asked again.
    """
    program, problems = _read(root, known_urls)
    if problems:
        raise CalendarError(problems)
    return program


def check(root: Path) -> list[str]:
    try:
        load_program(root)
    except CalendarError as error:
        return error.problems
    return []


def _read(root: Path, known_urls: Collection[str] = frozenset()) -> tuple[Program, list[str]]:
    program, problems = Program(), []
    if not root.is_dir():
        return program, [f"{root}:0: calendar folder not found"]
    files = [p for p in _yaml_files(root, "**") if WORKDAY_FOLDER not in p.relative_to(root).parts]
    if not files:
        problems.append(f"{root}:0: no calendar files (*.yaml, *.yml) found")
    unreadable = False
    for path in files:
        file_problems, parsed = _read_file(path, program)
        problems += file_problems
        unreadable = unreadable or not parsed
    for path in _yaml_files(root / WORKDAY_FOLDER, ""):
        problems += _read_workdays(path, program)
    if program.programme is not None:
        _sign_sms(program, program.programme.sms_signature)
        _name_sender(program, program.programme.office_short)
    problems += _add_categories(program)
    if not unreadable:  # references are checked only when every file parsed, so one bad file does not cascade
        problems += _cross_check(program, known_urls)
    return program, problems


def _yaml_files(folder: Path, depth: str) -> list[Path]:
    """Every *.yaml and *.yml file (``depth`` "**": in subfolders too); a .yml is read, never silently skipped."""
    pattern = f"{depth}/*" if depth else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix in YAML_SUFFIXES and p.is_file())


def _parse(path: Path, model: type[ModelT]) -> tuple[Any, ModelT | None, list[str]]:
    """The YAML with its lines, the validated model (None when invalid) and the problems, as path:line."""
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8")) or LineDict()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        return None, None, [f"{path}:{line}: YAML: {exc.problem}"]
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, None, [f"{path}:0: cannot read: {exc}"]
    if not isinstance(raw, dict):
        return raw, None, [f"{path}:1: expected a mapping"]
    try:
        return raw, model.model_validate(raw), []
    except ValidationError as exc:
        return raw, None, [f"{path}:{_error_line(raw, err)}: {_describe(err)}" for err in exc.errors()]


def _load_yaml(text: str) -> Any:
    """The document, as ``yaml.load`` with the line-keeping loader reads it, but a top-level list (a province's
    20,000 units) composed and constructed one entry at a time: PyYAML builds a whole document's node graph before
    any Python object, and for a units file that graph was three times the size of what it becomes."""
    loader = _LineLoader(text)
    try:
        loader.get_event()  # the stream's start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # the document's start
        composer = _Composer(loader)
        if loader.check_event(yaml.MappingStartEvent):
            data = _top_mapping(loader, composer)
        else:  # not a mapping: read as yaml.load would, for the caller to refuse
            data = loader.construct_document(composer.compose_node(None, 0))
        loader.get_event()  # the document's end
        if not loader.check_event(yaml.StreamEndEvent):
            event = loader.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream", None, "but found another document", event.start_mark
            )
        return data
    finally:
        loader.dispose()


class _Composer(yaml.composer.Composer):
    """PyYAML's composer over the loader's events (libyaml's, when built with it), so a node can be composed alone;
    the anchors are kept across nodes, as in one document."""

    def __init__(self, loader: Any) -> None:
        self.loader, self.anchors = loader, {}
        self.check_event, self.peek_event, self.get_event = loader.check_event, loader.peek_event, loader.get_event
        self.descend_resolver, self.ascend_resolver = loader.descend_resolver, loader.ascend_resolver
        self.resolve = loader.resolve


def _top_mapping(loader: Any, composer: Any) -> LineDict:
    """The top-level mapping, each value read alone, a list's entries each alone (see ``_load_yaml``)."""
    start = loader.get_event()
    mapping = LineDict()
    mapping.line, mapping.key_lines = start.start_mark.line + 1, {}
    while not loader.check_event(yaml.MappingEndEvent):
        key_node = composer.compose_node(None, None)
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.MarkedYAMLError(
                "while reading a mapping",
                start.start_mark,
                "a key must be a name, not a list or mapping",
                key_node.start_mark,
            )
        key = loader.construct_document(key_node)
        if key in mapping:
            raise yaml.MarkedYAMLError(
                "while reading a mapping", start.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        if loader.check_event(yaml.SequenceStartEvent) and not loader.peek_event().anchor:
            loader.get_event()
            entries = []
            while not loader.check_event(yaml.SequenceEndEvent):
                entries.append(loader.construct_document(composer.compose_node(None, None)))
            loader.get_event()
            mapping[key] = entries
        else:
            mapping[key] = loader.construct_document(composer.compose_node(None, None))
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
    loader.get_event()
    return mapping


def _read_workdays(path: Path, program: Program) -> list[str]:
    _, parsed, problems = _parse(path, WorkdayFile)
    if parsed is None:
        return problems
    if path.stem != str(parsed.year):
        return [f"{path}:1: year {parsed.year} in a file named {path.name}: name it {parsed.year}.yaml"]
    first = program.where.get(("workdays", path.stem))
    if first is not None:  # 2027.yaml and 2027.yml would merge silently
        return [f"{path}:1: a second file for {parsed.year} (first at {first}): keep one"]
    program.where[("workdays", path.stem)] = Location(str(path), 1)
    program.workdays.add_year(parsed.year, holidays=parsed.holidays, workdays=parsed.workdays, source=parsed.source)
    return []


def _read_file(path: Path, program: Program) -> tuple[list[str], bool]:
    """Problems in one file, and whether it parsed (so its units and duties are known).

    A file whose only problems are in some entries still gives its valid entries, so references elsewhere are
    checked in the same run; the broken entries' ids are remembered, so a reference to one is not reported again.
    """
    raw, parsed, problems = _parse(path, CalendarFile)
    if parsed is None and isinstance(raw, dict) and problems:
        parsed = _salvage(raw, program)
    if parsed is None:
        return problems, False
    for block in ("programme", "scoring"):
        problems += _single_block(raw, parsed, block, path, program)
    sections: tuple[tuple[str, str, list[Any], dict[str, Any]], ...] = (
        ("unit", "units", parsed.units, program.units),
        ("ladder", "ladders", parsed.ladders, program.ladders),
        ("duty", "duties", parsed.duties, program.duties),
        ("category", "categories", parsed.categories, program.categories),
    )
    name = str(path)  # one string shared by every location in the file
    for kind, section, items, known in sections:
        for item, index in zip(items, _raw_positions(raw, section, items), strict=True):
            here = Location(name, _line_of(raw, (section, index)))
            previous = program.where.get((kind, item.id))
            if previous is not None:
                problems.append(f"{here}: duplicate {kind} id {item.id!r} (first at {previous})")
                continue
            known[item.id] = item
            program.where[(kind, item.id)] = here
            node = raw[section][index]
            for field_name, line in node.key_lines.items():
                if kind != "unit" or field_name in UNIT_FIELDS_CITED:
                    program.where[(kind, f"{item.id}.{field_name}")] = Location(name, line)
    for unit, index in zip(parsed.units, _raw_positions(raw, "units", parsed.units), strict=True):
        for number, contact in enumerate(unit.contacts):
            line = _line_of(raw, ("units", index, "contacts", number, "url"))
            program.where[("contact", f"{unit.id}/{contact.name}")] = Location(name, line)
    return problems, True


def _single_block(raw: Any, parsed: CalendarFile, block: str, path: Path, program: Program) -> list[str]:
    """``programme`` and ``scoring``: one per folder, in whichever file holds it."""
    value = getattr(parsed, block)
    if value is None:
        return []
    here = Location(str(path), raw.key_lines[block])
    first = program.where.get((block, ""))
    if first is not None:
        what = "guidance" if block == "programme" else "assessment"
        return [f"{here}: a second {block} block (first at {first}): a folder carries one {what}"]
    setattr(program, block, value)
    program.where[(block, "")] = here
    return []


SECTIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "units": ("unit", UnitSpec),
    "ladders": ("ladder", LadderSpec),
    "duties": ("duty", DutySpec),
    "categories": ("category", CategorySpec),
}


def _salvage(raw: dict[str, Any], program: Program) -> CalendarFile | None:
    """The file's valid entries, when its problems lie inside entries; None when the file itself is wrong."""
    kept: dict[str, list[Any]] = {}
    for section, (kind, model) in SECTIONS.items():
        entries = raw.get(section) or []
        if not isinstance(entries, list):
            return None
        kept[section] = []
        for entry in entries:
            try:
                kept[section].append(model.model_validate(entry))
            except ValidationError:
                # An entry without a readable id could be anything referred to: then none of its kind is judged.
                readable = isinstance(entry, dict) and isinstance(entry.get("id"), str)
                program.broken.add((kind, entry["id"] if readable else "*"))
    try:
        rest = CalendarFile.model_validate({key: value for key, value in raw.items() if key not in SECTIONS})
    except ValidationError:
        return None
    return rest.model_copy(update=kept)


def _sign_sms(program: Program, signature: str) -> None:
    """Give each smsgw:// contact without a ``sign=`` of its own the programme's SMS signature (notify/sms.py)."""
    _default_parameter(program, ("smsgw",), "sign", signature)


def _name_sender(program: Program, office: str) -> None:
    """Give each mailto:// contact without a ``name=`` the office as the sender's display name: a clerk's inbox then
    shows 市城管办, not duties@…, and the mail is less likely to be taken for spam."""
    _default_parameter(program, ("mailto", "mailtos"), "name", office)


def _default_parameter(program: Program, channels: tuple[str, ...], key: str, value: str) -> None:
    for unit_id, unit in list(program.units.items()):
        contacts = [_with_parameter(contact, channels, key, value) for contact in unit.contacts]
        if contacts != unit.contacts:
            program.units[unit_id] = unit.model_copy(update={"contacts": contacts})


def _with_parameter(contact: ContactSpec, channels: tuple[str, ...], key: str, value: str) -> ContactSpec:
    if contact.channel not in channels or _unparsable(contact.url) or key in parse_qs(urlsplit(contact.url).query):
        return contact  # an unreadable URL is reported by _contact_problems
    joiner = "&" if "?" in contact.url else "?"
    return contact.model_copy(update={"url": f"{contact.url}{joiner}{key}={quote(value)}"})


def _add_categories(program: Program) -> list[str]:
    """Each case category becomes the duty its cases are items of, and its steps a ladder of their own."""
    problems = []
    # The categories' places, gathered once: scanning every place (nine a unit) for each category took seconds.
    places = [(key, where) for (kind, key), where in program.where.items() if kind == "category"]
    for category in program.categories.values():
        taken = program.where.get(("duty", category.id))
        if taken is not None:
            here = program.location("category", category.id)
            problems.append(f"{here}: category id {category.id!r} is also a duty's id (at {taken}): rename one")
            continue
        program.duties[category.id] = category.as_duty()
        for key, where in places:
            if key == category.id or key.startswith(f"{category.id}."):
                program.where[("duty", key.replace(".units", ".assignees"))] = where
        ladder = category.as_ladder()
        if ladder is not None:
            program.ladders[ladder.id] = ladder
            program.where[("ladder", ladder.id)] = program.location("category", category.id, "steps")
    return problems


def _cross_check(program: Program, known_urls: Collection[str] = frozenset()) -> list[str]:
    problems = []
    for unit in program.units.values():
        if (
            unit.district is not None
            and unit.district not in program.units
            and ("unit", unit.district) not in program.broken
        ):
            here = program.location("unit", unit.id, "district")
            problems.append(f"{here}: unit {unit.id}: unknown district {unit.district!r}")
        problems += _contact_problems(unit, program, known_urls)
    for duty in program.duties.values():
        if duty.ladder not in program.ladders and not program.is_broken("ladder", duty.ladder):
            problems.append(
                f"{program.location('duty', duty.id, 'ladder')}: duty {duty.id}: unknown ladder {duty.ladder!r}"
            )
        subjects = duty.unannounced.subjects if duty.unannounced else []
        checked = duty.quota.subjects if duty.quota else []
        for field_name, selectors in (
            ("lead", duty.lead),
            ("cooperating", duty.cooperating),
            ("assignees", duty.assignees),
            ("unannounced", subjects),
            ("quota", checked),
        ):
            for selector in selectors:
                if not program.resolve(selector) and not program.is_broken("unit", selector):
                    here = program.location("duty", duty.id, field_name)
                    what = "category" if duty.category is not None else "duty"
                    problems.append(f"{here}: {what} {duty.id}: unknown unit or group {selector!r}")
        problems += _finding_category(program, duty)
        problems += _never_due(program, duty)
        if duty.due.rule == "day_of_period" and duty.due.roll == "none":
            here = program.location("duty", duty.id, "due")
            problems.append(
                f"{here}: duty {duty.id}: due.roll: none lets a due date fall on a day off; "
                "write roll: backward or roll: forward"
            )
    return problems + _scoring_problems(program)


def _finding_category(program: Program, duty: DutySpec) -> list[str]:
    """A check's findings become cases of a category the calendars define."""
    for field_name, spec in (("quota", duty.quota), ("unannounced", duty.unannounced)):
        named = spec.finding_category if spec is not None else None
        if named is not None and named not in program.categories and not program.is_broken("category", named):
            here = program.location("duty", duty.id, field_name)
            known = ", ".join(sorted(program.categories)) or "none"
            return [
                f"{here}: duty {duty.id}: {field_name}.finding_category: unknown category {named!r} (known: {known})"
            ]
    return []


def _scoring_problems(program: Program) -> list[str]:
    """Every unit a ranking group names must exist."""
    if program.scoring is None:
        return []
    here = program.where[("scoring", "")]
    return [
        f"{here}: scoring: group {group.id}: unknown unit or group {selector!r}"
        for group in program.scoring.groups
        for selector in group.units
        if not program.resolve(selector) and not program.is_broken("unit", selector)
    ]


# Long enough to meet every month and weekday combination, and a 29 February, whatever the rule.
PROBE_START, PROBE_END = date(2020, 1, 1), date(2028, 12, 31)


def _never_due(program: Program, duty: DutySpec) -> list[str]:
    if duty.category is not None:
        return []  # a case falls due when it is found, not by a rule
    """A recurrence that never fires, or a due rule no period can meet, is an error, not an empty ledger."""
    if not period_starts(duty, PROBE_START, PROBE_END):
        here = program.location("duty", duty.id, "recurrence")
        return [f"{here}: duty {duty.id}: recurrence {duty.period_rule.rrule!r} never fires"]
    if duty.unannounced is not None:
        return []
    zone = ZoneInfo("Asia/Shanghai")
    if expand(duty, PROBE_START, PROBE_END, program.workdays, zone):
        return []
    return [
        f"{program.location('duty', duty.id, 'due')}: duty {duty.id}: the due rule can never be met "
        f"in any period of {duty.period_rule.rrule!r}"
    ]


def _contact_problems(unit: UnitSpec, program: Program, known_urls: Collection[str]) -> Iterable[str]:
    seen: set[str] = set()
    for contact in unit.contacts:
        here = program.where[("contact", f"{unit.id}/{contact.name}")]
        if contact.name in seen:
            yield f"{here}: unit {unit.id}: duplicate contact name {contact.name!r}"
        seen.add(contact.name)
        broken = _unparsable(contact.url)
        if broken:
            yield f"{here}: unit {unit.id}: contact {contact.name!r}: invalid URL {_redact(contact.url)!r}: {broken}"
            continue
        # A bad URL would be dropped silently by apprise at send time; refuse it here instead. Asking apprise costs
        # half a millisecond a URL (most of it redacting secrets for its log), so one it accepted before is not asked.
        if contact.url not in known_urls and _instantiate(contact.url) is None:
            yield f"{here}: unit {unit.id}: contact {contact.name!r}: invalid apprise URL {_redact(contact.url)!r}"


def _instantiate(url: str) -> object:
    """The URL read by the plugin that will send it (bots, SMS, e-mail: notify/plugins.py), or None."""
    plugins.ready()
    return apprise.Apprise.instantiate(url)


def _unparsable(url: str) -> str:
    """Why urllib cannot read a URL (a port beyond 65535, a broken [IPv6] host), or "" when it can."""
    try:
        urlsplit(url).port  # noqa: B018  (reading the port is the check)
    except ValueError as exc:
        return str(exc)[:1].lower() + str(exc)[1:]
    return ""


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…" if "@" in rest or len(rest) > 40 else url


def _error_line(raw: Any, error: Any) -> int:
    """The line of the field an error is about; a check across fields names the field first in its message."""
    node = raw
    for part in error["loc"]:
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    first_word = error["msg"].removeprefix("Value error, ").split(":")[0].split(" ")[0]
    if isinstance(node, LineDict) and first_word in node:
        return _line_of(raw, (*error["loc"], first_word))
    return _line_of(raw, error["loc"])


def _has(node: Any, part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and part < len(node)


def _raw_positions(raw: Any, section: str, items: list[Any]) -> list[int]:
    """Where each parsed entry stands in the file. A salvaged file keeps only its valid entries, so the position in
    the parsed list is not the one in the YAML: each entry is matched, in order, to the next raw entry with its id
    (a duplicated id to its own second entry)."""
    entries = raw.get(section) if isinstance(raw, dict) else None
    entries = entries if isinstance(entries, list) else []
    positions, start = [], 0
    for position, item in enumerate(items):
        found = next(
            (i for i in range(start, len(entries)) if isinstance(entries[i], dict) and entries[i].get("id") == item.id),
            None,
        )
        positions.append(position if found is None else found)
        start = start if found is None else found + 1
    return positions


def _line_of(raw: Any, loc: Iterable[Any]) -> int:
    """The line of the deepest YAML node the error location reaches."""
    line, node = getattr(raw, "line", 1), raw
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line = node.key_lines.get(str(part), line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "string_type":
        message = _not_text(error["input"]) or message
    return f"{where}: {message}" if where else message


def _not_text(value: Any) -> str:
    """Why a number, boolean or date is no text, and how to write it as text (a unit id 123, a tag true)."""
    if isinstance(value, bool):
        written, kind = str(value).lower(), "a boolean"
    elif isinstance(value, int | float):
        written, kind = str(value), "a number"
    elif isinstance(value, date):
        written, kind = value.isoformat(), "a date"
    else:
        return ""
    return f'{written} is read as {kind}, not text: write it in quotes, "{written}"'
