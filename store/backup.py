"""Backup and restore: one .tar.gz with the SQLite store (taken with SQLite's online backup API, so the service can
keep running), every evidence photo, and a manifest of row counts and photo hashes to check a restore against.

On PostgreSQL the database is backed up with pg_dump (README); ``backup`` then archives the photos and the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MANIFEST = "manifest.json"
DATABASE = "duties.db"
EVIDENCE = "evidence"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is in Chinese."""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    dialect: str
    revision: str | None
    counts: dict[str, int]
    evidence: dict[str, str]  # stored name → sha256 of its bytes

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, ensure_ascii=False, indent=2, sort_keys=True).encode()


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        tables = sorted(inspect(connection).get_table_names())
        return {t: int(connection.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}


def evidence_hashes(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def backup(engine: Engine, *, database_path: Path | None, var_dir: Path, target: Path, at: datetime) -> Manifest:
    """Write ``target`` (.tar.gz). ``database_path`` is the SQLite file, or None on PostgreSQL (use pg_dump)."""
    from store import migrate
    from store.db import make_engine

    evidence = var_dir / EVIDENCE
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / DATABASE
        if database_path is not None:
            online_copy(database_path, snapshot)
            copied = make_engine(f"sqlite:///{snapshot}")
            counts = row_counts(copied)  # of the copy itself: the live store may have moved on meanwhile
            copied.dispose()
        else:
            counts = row_counts(engine)
        revision = migrate.current(engine)
        manifest = Manifest(at.isoformat(), engine.dialect.name, revision, counts, evidence_hashes(evidence))
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(partial, "w:gz") as archive:
            _add_bytes(archive, MANIFEST, manifest.to_json())
            if database_path is not None:
                archive.add(snapshot, arcname=DATABASE)
            if evidence.exists():
                archive.add(evidence, arcname=EVIDENCE)
        partial.replace(target)  # never a half-written backup under the real name
    return manifest


def online_copy(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy while other connections read and write."""
    if not source.exists():
        raise BackupError(f"找不到数据库文件：{source}")
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
    copy.close()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def read_manifest(source: Path) -> Manifest:
    try:
        with tarfile.open(source, "r:gz") as archive:
            member = archive.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            return Manifest(**json.loads(member.read()))
    except (OSError, KeyError, tarfile.TarError, json.JSONDecodeError, TypeError) as problem:
        raise BackupError(f"{source} 不是 duties 的备份文件（{type(problem).__name__}）。") from None


def restore(source: Path, *, database_path: Path | None, var_dir: Path, at: datetime) -> tuple[Manifest, Path | None]:
    """Put a backup back: the SQLite file and the photos. The store it replaces is kept beside it, renamed.

    Returns the manifest and where the replaced store was kept (None if there was none). Stop the service first.
    """
    manifest = read_manifest(source)
    if manifest.dialect == "sqlite" and database_path is None:
        raise BackupError(
            "该备份是 SQLite 数据库；当前 DUTIES_DATABASE_URL 指向 PostgreSQL，请用 pg_restore 恢复数据库。"
        )
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source, "r:gz") as archive:
        archive.extractall(scratch, filter="data")
        _check_photos(Path(scratch) / EVIDENCE, manifest)
        kept = _put_database(Path(scratch) / DATABASE, database_path, at) if database_path is not None else None
        _put_photos(Path(scratch) / EVIDENCE, var_dir / EVIDENCE)
    return manifest, kept


def _check_photos(folder: Path, manifest: Manifest) -> None:
    if evidence_hashes(folder) != manifest.evidence:
        raise BackupError("备份中的照片与清单不符，备份可能已损坏；未做任何恢复。")


def _put_database(snapshot: Path, database_path: Path, at: datetime) -> Path | None:
    if not snapshot.exists():
        raise BackupError("备份中没有数据库文件。")
    database_path.parent.mkdir(parents=True, exist_ok=True)
    kept = None
    if database_path.exists():
        kept = database_path.with_name(f"{database_path.name}.before-restore-{at:%Y%m%d%H%M%S}")
        online_copy(database_path, kept)
    staged = database_path.with_name(database_path.name + ".restoring")
    shutil.copyfile(snapshot, staged)
    for leftover in (Path(f"{database_path}-wal"), Path(f"{database_path}-shm")):
        leftover.unlink(missing_ok=True)  # the old store's journal must not be replayed onto the restored one
    staged.replace(database_path)
    return kept


def _put_photos(source: Path, target: Path) -> None:
    """Photos are stored by content hash: copying them over is safe, and photos added since the backup stay."""
    if not source.exists():
        return
    for photo in source.rglob("*"):
        if photo.is_file():
            destination = target / photo.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                shutil.copyfile(photo, destination)
