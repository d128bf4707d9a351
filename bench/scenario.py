"""A synthetic city or province running the shipped programme, for the scale benchmarks.

    python -m bench.scenario --units 1000 [--districts 5] [--out DIR]

Copies the shipped programme (calendars/huzhou: duties, ladders, assessment, sites, targets, oversight, deliverables,
whichever exist) into a calendars folder and writes a ``units.yaml`` with N units: the city-level units of the
shipped file once (市城管办, 市市场监管局 …), one district office per district, and the shipped district-level units
(streets, markets, market supervision, greening, ecology, sites) replicated round-robin across the districts with
their kinds and tags, so every duty finds as many assignees as it would in a city of that size. Huzhou has 5
districts; a province has about 50 (the default above 10,000 units).

Contacts keep the shipped roles (staff, leader) and count per unit, but every URL is a loopback webhook
(``json://127.0.0.1:PORT/…``): it validates when the calendars load, and nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "calendars" / "huzhou"
PROGRAMME_FILES = (
    "programme",
    "cases",
    "duties",
    "ladders",
    "assessment",
    "sites",
    "targets",
    "oversight",
    "deliverables",
)
DISTRICT_OFFICE = "district_office"
DEFAULT_HOOK = "json://127.0.0.1:9/duties"  # port 9 (discard): the benchmarks send through a stub, never here


@dataclass(frozen=True)
class Scenario:
    root: Path  # the calendars folder: load it with calendars.loader.load_program
    units: int
    districts: int
    by_kind: dict[str, int]

    def describe(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.by_kind.items(), key=lambda kv: -kv[1]))
        return f"{self.units} units in {self.districts} districts ({kinds})"


def default_districts(units: int) -> int:
    """5 for a city the size of Huzhou, growing to about 50 for a province."""
    return max(5, min(50, units // 200))


def generate(target: Path, *, units: int, districts: int | None = None, hook: str = DEFAULT_HOOK) -> Scenario:
    """Write the calendars folder of a synthetic city of ``units`` units under ``target`` (created if missing)."""
    district_count = districts or default_districts(units)
    shipped = yaml.safe_load((SHIPPED / "units.yaml").read_text(encoding="utf-8"))["units"]
    city_level = [u for u in shipped if u.get("district") is None and u["kind"] != DISTRICT_OFFICE]
    offices = [u for u in shipped if u["kind"] == DISTRICT_OFFICE]
    local = [u for u in shipped if u.get("district") is not None]
    fixed = len(city_level) + district_count
    if units < fixed + len(local):
        raise ValueError(f"{units} units: need at least {fixed + len(local)} for {district_count} districts")
    target.mkdir(parents=True, exist_ok=True)
    for name in PROGRAMME_FILES:
        source = SHIPPED / f"{name}.yaml"
        if source.exists():
            shutil.copyfile(source, target / source.name)
    if (SHIPPED / "workdays").is_dir():
        shutil.copytree(SHIPPED / "workdays", target / "workdays", dirs_exist_ok=True)
    rows: list[dict[str, Any]] = [_unit(u, u["id"], u["name"], None, hook) for u in city_level]
    district_ids = [f"d{number:02d}" for number in range(1, district_count + 1)]
    for number, district in enumerate(district_ids):
        template = offices[number % len(offices)]
        rows.append(_unit(template, district, f"第{number + 1}区城市管理委员会办公室", None, hook))
    counters: dict[tuple[str, str], int] = {}
    for index in range(units - fixed):
        # Each district gets the next template in turn: every cycle of len(local) × districts units gives every
        # district one of each shipped local unit, so the mix of kinds and tags is the same everywhere.
        district = district_ids[index % district_count]
        template = local[(index // district_count) % len(local)]
        key = (district, template["kind"])
        counters[key] = counters.get(key, 0) + 1
        unit_id = f"{district}-{template['kind'].replace('_', '-')}-{counters[key]}"
        rows.append(_unit(template, unit_id, f"{template['name']}（{unit_id}）", district, hook))
    _write_units(target / "units.yaml", rows)
    by_kind: dict[str, int] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
    return Scenario(root=target, units=len(rows), districts=district_count, by_kind=by_kind)


def _unit(template: dict[str, Any], unit_id: str, name: str, district: str | None, hook: str) -> dict[str, Any]:
    unit: dict[str, Any] = {"id": unit_id, "name": name, "kind": template["kind"]}
    if district is not None:
        unit["district"] = district
    if template.get("tags"):
        unit["tags"] = list(template["tags"])
    contacts = []
    for number, contact in enumerate(template.get("contacts", [])):
        entry = {"name": contact["name"], "url": f"{hook}/{unit_id}/{number}"}
        if contact.get("role", "staff") != "staff":
            entry["role"] = contact["role"]
        contacts.append(entry)
    unit["contacts"] = contacts
    return unit


def _write_units(path: Path, rows: list[dict[str, Any]]) -> None:
    """One unit per line, as a flow mapping (JSON is YAML): fast to write at 100,000 units, and each error names
    its unit's line."""
    lines = ["# Generated by bench/scenario.py: a synthetic city on the shipped programme.", "units:"]
    lines += [f"  - {json.dumps(row, ensure_ascii=False)}" for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--districts", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder to write (default: a temporary one, removed)")
    args = parser.parse_args()
    from calendars.loader import load_program

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch) / "calendars"
        started = time.perf_counter()
        scenario = generate(folder, units=args.units, districts=args.districts)
        written = time.perf_counter() - started
        program = load_program(scenario.root)
        loaded = time.perf_counter() - started - written
        print(f"{scenario.describe()}")
        print(f"written in {written:.2f} s to {folder}; loaded in {loaded:.2f} s: {len(program.duties)} duties")


if __name__ == "__main__":
    main()
