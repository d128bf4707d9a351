"""Backup and restore: take a backup of a store with data and photos, restore it elsewhere, compare row counts and
photo hashes; a damaged archive is refused and changes nothing; the store a restore replaces is kept."""

from __future__ import annotations

import io
import tarfile
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows import steps
from flows.cli import app as cli
from flows.steps import Context
from store import backup, db
from store.models import Occurrence
from store.settings import get_settings
from tests.conftest import local
from tests.test_steps import CORE
from tests.web_support import Clock, path_of, png

runner = CliRunner()


def filled_store(session: Session, ctx: Context, client: TestClient, now: Clock) -> None:
    """February's core duties, and two confirmations with a different photo each."""
    steps.plan(session, ctx, start=date(2026, 2, 1), end=date(2026, 2, 28), at=local("2026-01-20T08:00"), only=CORE)
    first, second = session.exec(select(Occurrence).limit(2)).all()
    for occurrence, photo in ((first, png(1)), (second, png(2))):
        posted = client.post(
            path_of(ctx, occurrence, now.at), data={"note": "照片"}, files={"evidence": ("a.png", photo)}
        )
        assert posted.status_code == 200


def test_a_backup_restores_every_row_and_photo(
    session: Session, ctx: Context, client: TestClient, now: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled_store(session, ctx, client, now)
    var = get_settings().var_dir
    before_counts, before_photos = backup.row_counts(db.get_engine()), backup.evidence_hashes(var / "evidence")
    assert len(before_photos) == 2 and before_counts["occurrence"] == 63 and before_counts["confirmation"] == 2
    archive = tmp_path / "backup.tar.gz"
    made = runner.invoke(cli, ["backup", str(archive), "--at", "2026-02-03T12:00"])
    assert made.exit_code == 0 and "2 张照片" in made.stdout, made.stderr

    elsewhere = tmp_path / "elsewhere"  # a fresh machine: another var folder, no store yet
    monkeypatch.setenv("DUTIES_VAR_DIR", str(elsewhere))
    monkeypatch.delenv("DUTIES_DATABASE_URL", raising=False)
    db.get_engine().dispose()
    db.get_engine.cache_clear()
    get_settings.cache_clear()
    restored = runner.invoke(cli, ["restore", str(archive), "--at", "2026-02-04T09:00"])
    assert restored.exit_code == 0, restored.stderr
    assert backup.row_counts(db.get_engine()) == before_counts
    assert backup.evidence_hashes(elsewhere / "evidence") == before_photos

    # Restoring again over the restored store keeps the one it replaces.
    again = runner.invoke(cli, ["restore", str(archive), "--at", "2026-02-05T09:00"])
    assert again.exit_code == 0 and "原数据库已另存为" in again.stdout
    assert (elsewhere / "duties.db.before-restore-20260205010000").exists()


def test_a_damaged_backup_is_refused_and_changes_nothing(
    session: Session, ctx: Context, client: TestClient, now: Clock, tmp_path: Path
) -> None:
    filled_store(session, ctx, client, now)
    archive = tmp_path / "backup.tar.gz"
    assert runner.invoke(cli, ["backup", str(archive)]).exit_code == 0
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if data is not None and member.name.endswith(".png"):
                payload = data.read()[:-1] + b"\x00"  # one byte changed: the photo no longer matches its hash
                member.size = len(payload)
                target.addfile(member, io.BytesIO(payload))
            else:
                target.addfile(member, data)
    counts = backup.row_counts(db.get_engine())
    refused = runner.invoke(cli, ["restore", str(damaged)])
    assert refused.exit_code == 1 and "照片与清单不符" in refused.stderr
    not_ours = tmp_path / "not-a-backup.tar.gz"
    not_ours.write_bytes(b"hello")
    assert "不是 duties 的备份文件" in runner.invoke(cli, ["restore", str(not_ours)]).stderr
    assert backup.row_counts(db.get_engine()) == counts


def test_a_restore_is_refused_while_another_process_has_the_store_open(sqlite_store: str, tmp_path: Path) -> None:
    """Issue 18, defect 9: the web app would keep writing to the replaced file and later writes would be lost."""
    import os
    import subprocess
    import sys

    runner = CliRunner()
    archive = tmp_path / "store.tar.gz"
    made = runner.invoke(cli, ["backup", str(archive), "--at", "2026-02-04T09:00"])
    assert made.exit_code == 0, made.output
    holder = "from store.db import get_engine; get_engine(); print('open', flush=True); import sys; sys.stdin.read()"
    web = subprocess.Popen(
        [sys.executable, "-c", holder], env=os.environ.copy(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert web.stdout is not None and web.stdout.readline().strip() == "open"  # it holds the store now
        database = Path(sqlite_store.split("///", 1)[1])
        before = database.stat().st_mtime_ns
        refused = runner.invoke(cli, ["restore", str(archive), "--at", "2026-02-05T09:00"])
        assert refused.exit_code == 1 and "数据库正在使用中" in refused.stderr and "请先停止" in refused.stderr
        assert database.stat().st_mtime_ns == before and not list(tmp_path.rglob("*.before-restore-*"))
    finally:
        web.communicate("")  # the service stops
    restored = runner.invoke(cli, ["restore", str(archive), "--at", "2026-02-05T09:00"])
    assert restored.exit_code == 0, restored.stderr
