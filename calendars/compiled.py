"""The calendars parsed once per content: a compiled programme kept in the var folder, keyed on the files' bytes.

Parsing 20,000 units with their line numbers and asking apprise about each contact took most of every command
(issue 16). The first process that loads a folder parses it fully, as ``duties check`` does, and keeps the result in
``var/cache/programme-<key>.pickle``; every later process with the same files and the same code unpickles it. Any
changed byte under the folder, including workdays/, a moved folder, or an upgrade gives another key: that process
parses again and reports every problem as ``path:line``. Only a programme without problems is kept.

The kept programme has no YAML line tracking: only the locations the running code cites (duties, ladders,
categories, the programme and scoring blocks), not one per unit field and contact.

Contact URLs apprise accepted are kept beside it, so a change to the duties, or to one unit, asks apprise only
about URLs it has not accepted before.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import pickle
import sys
import uuid
from collections.abc import Iterable, Iterator, MutableMapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from calendars.loader import LineDict, Program, load_program
from calendars.schema import UnitSpec

# Raise when the pickled shape changes in a way the code fingerprint below would not see.
CACHE_FORMAT = 1
CACHE_FOLDER = "cache"
KEPT_PROGRAMMES = 4  # the newest few: a folder switched back and forth, or two folders on one var folder
# Whose code decides what a parse gives: these packages' versions and this package's calendar-reading sources.
PACKAGES = ("duties", "apprise", "pydantic", "pydantic-core", "PyYAML", "chinesecalendar", "holidays")
SOURCES = ("calendars", "notify")
# The location kinds the running code reads (flows/steps.py cites a duty's file:line); the rest only served messages
# of the full parse, and one per unit field and contact is most of the programme's memory at 100,000 units.
KEPT_LOCATIONS = ("duty", "ladder", "category", "programme", "scoring", "workdays")


def load(root: Path, var_dir: Path) -> Program:
    """The programme of the calendar folder ``root``: from the cache when its files are unchanged, else parsed (and
    kept). Raises ``calendars.loader.CalendarError`` with every problem, as ``load_program`` does."""
    folder = var_dir / CACHE_FOLDER
    key = content_key(root)
    path = folder / f"programme-{key}.pickle"
    program = read_cached(path, key)
    if program is not None:
        return program
    known = _known_urls(folder)
    program = load_program(root, known_urls=known)
    urls = sorted({contact.url for unit in program.units.values() for contact in unit.contacts})
    compact(program)
    _keep(folder, path, key, program, urls)
    return program


def content_key(root: Path) -> str:
    """A hash of every calendar file's path and bytes under ``root``, of where the folder is, and of the code."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{code_fingerprint()}|{root.resolve()}".encode())
    for file in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        digest.update(f"\0{file.relative_to(root)}\0".encode())
        with file.open("rb") as handle:  # in pieces: a province's units file is 30 MB, not to be held at once
            size = 0
            while piece := handle.read(1 << 20):
                digest.update(piece)
                size += len(piece)
        digest.update(f"\0{size}\0".encode())
    return digest.hexdigest()[:40]


@cache
def code_fingerprint() -> str:
    """The versions and sources that decide what a parse gives: an upgrade invalidates every kept programme."""
    digest = hashlib.sha256(sys.version.encode())
    for name in PACKAGES:
        try:
            digest.update(f"{name}={metadata.version(name)};".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=none;".encode())
    here = Path(__file__).resolve().parent.parent
    for folder in SOURCES:
        for source in sorted((here / folder).glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def compact(program: Program) -> None:
    """Drop what only the full parse needed, compute once what every process would otherwise compute (the digest,
    the selector groups, each year's working-day state: flows/redate.py compares them on every plan and tick, 40 ms a
    year), and keep the units packed."""
    program.where = {place: found for place, found in program.where.items() if place[0] in KEPT_LOCATIONS}
    program.digest  # noqa: B018  (cached_property: stored with the programme)
    program._groups  # noqa: B018
    for year in _years_known(program):
        program.workdays.year_state(year)
    # A mapping read like the dict it replaces (get, in, items, values, len); the loader's code only builds dicts.
    program.units = PackedUnits(program.units)  # type: ignore[assignment]


class PackedUnits(MutableMapping[str, UnitSpec]):
    """The units of a kept programme, each kept as its JSON and made a model when first asked for.

    As models, 100,000 units are 150 MB (each unit and contact has its own ``__dict__``) and a few seconds to
    unpickle, in every command; most commands read a few units (those with something due), and an idle tick none.
    """

    def __init__(self, units: dict[str, UnitSpec]) -> None:
        self._packed: dict[str, bytes] = {unit_id: unit.model_dump_json().encode() for unit_id, unit in units.items()}
        self._opened: dict[str, UnitSpec] = {}

    def __getitem__(self, unit_id: str) -> UnitSpec:
        found = self._opened.get(unit_id)
        if found is None:
            # Validating JSON that a valid model wrote gives the same model; KeyError for an unknown id, as a dict.
            found = self._opened[unit_id] = UnitSpec.model_validate_json(self._packed[unit_id])
        return found

    def __setitem__(self, unit_id: str, unit: UnitSpec) -> None:
        self._packed[unit_id] = unit.model_dump_json().encode()
        self._opened[unit_id] = unit

    def __delitem__(self, unit_id: str) -> None:
        del self._packed[unit_id]
        self._opened.pop(unit_id, None)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __getstate__(self) -> dict[str, Any]:
        return {"_packed": self._packed}  # the opened models are not kept: each process opens its own

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._packed, self._opened = state["_packed"], {}


def _years_known(program: Program) -> range:
    """The years around the last published arrangement (the present, as far as the data can tell without a clock):
    a tick compares the year before its own and three after; another year is computed when asked, as before."""
    published = [year for year in range(2000, 2100) if program.workdays.is_published(year)]
    last = max(published, default=2026)
    return range(last - 2, last + 5)


def read_cached(path: Path, key: str) -> Program | None:
    """The kept programme, or None when there is none or it cannot be used (corrupt, another format or key)."""
    collecting = gc.isenabled()
    gc.disable()  # a hundred thousand new objects would set the collector off again and again: a third of the time
    try:
        with path.open("rb") as handle:
            stored = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception:  # a torn or foreign file, an old class layout: parse again and rewrite it
        return None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(stored, tuple) or len(stored) != 3 or stored[:2] != (CACHE_FORMAT, key):
        return None
    program = stored[2]
    return program if isinstance(program, Program) else None


class _PlainPickler(pickle.Pickler):
    """Writes a line-tracking mapping (LineDict) that reached a model's free-form field as a plain dict."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is LineDict:
            return dict, (dict(obj),)
        return NotImplemented


def dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _PlainPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def _keep(folder: Path, path: Path, key: str, program: Program, urls: list[str]) -> None:
    """Write the programme and the accepted URLs; a cache that cannot be written only costs the next parse."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(path, dumps((CACHE_FORMAT, key, program)))
        write_atomically(_urls_path(folder), json.dumps(urls, ensure_ascii=False).encode())
        _prune(folder.glob("programme-*.pickle"))
        for older in folder.glob("contact-urls-*.json"):  # another version's answers
            if older != _urls_path(folder):
                older.unlink(missing_ok=True)
    except OSError:
        pass


def write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target and rename over it: a reader sees the old file or the new one, never a torn one, even
    when several processes write at once (each its own temporary file; the last rename wins, and all are equal)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("xb") as handle:  # created with the process's umask, like the store beside it
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _known_urls(folder: Path) -> frozenset[str]:
    try:
        found = json.loads(_urls_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(url for url in found if isinstance(url, str)) if isinstance(found, list) else frozenset()


def _urls_path(folder: Path) -> Path:
    """Apprise's answer depends on its version and the plugins notify/ registers: keyed on the code."""
    return folder / f"contact-urls-{code_fingerprint()}.json"


def _prune(files: Iterable[Path]) -> None:
    """Keep the newest few programmes; a process still reading a removed one keeps its open file."""
    dated = []
    for file in files:
        try:
            dated.append((file.stat().st_mtime_ns, file))
        except OSError:
            continue
    for _, file in sorted(dated, reverse=True)[KEPT_PROGRAMMES:]:
        file.unlink(missing_ok=True)
