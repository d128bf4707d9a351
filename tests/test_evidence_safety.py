"""Issue 20, finding 2: a photo bomb is refused with a Chinese page and nothing recorded; stored photos are served
with the content type validated at upload and ``nosniff``, whatever name and type the upload claimed."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlmodel import Session

from flows.steps import Context
from store.models import Confirmation, Occurrence
from tests.desk_support import log_in
from tests.web_support import Clock, ledger_state, path_of, png


def declared_png(width: int, height: int) -> bytes:
    """A PNG of a hundred-odd bytes whose header declares ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 40, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_a_photo_bomb_is_refused_in_chinese_and_nothing_is_recorded(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock, settings_env: Path
) -> None:
    # 60000×60000 is refused by Pillow at open; 8001×8001 is below Pillow's limits but above ours.
    for width, height in ((60000, 60000), (8001, 8001)):
        bomb = declared_png(width, height)
        assert len(bomb) < 200
        before = ledger_state(session)
        response = client.post(
            path_of(ctx, item, now.at),
            data={"note": "整改照片见附件"},
            files={"evidence": ("site.png", bomb, "image/png")},
        )
        assert response.status_code == 400 and "Traceback" not in response.text
        assert "照片“site.png”像素过多" in response.text and "整改照片见附件" in response.text
        assert ledger_state(session) == before
        assert not (settings_env / "var" / "evidence").exists()


def test_evidence_is_served_as_its_validated_type_with_nosniff(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock
) -> None:
    uploads = [("evidence", ("page.html", png(), "text/html")), ("evidence", ("x.svg", jpeg(), "image/svg+xml"))]
    response = client.post(path_of(ctx, item, now.at), data={"note": "见照片"}, files=uploads)
    assert response.status_code == 200
    names = session.execute(select(Confirmation)).scalar_one().evidence
    assert sorted(name.rpartition(".")[2] for name in names) == ["jpg", "png"]
    log_in(client, session, "city-boss")
    for name in names:
        served = client.get(f"/desk/items/{item.id}/evidence/{name}")
        wanted = "image/png" if name.endswith(".png") else "image/jpeg"
        assert served.status_code == 200 and served.headers["content-type"] == wanted
        assert served.headers["x-content-type-options"] == "nosniff"
