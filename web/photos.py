"""Photos as evidence: read, checked and kept by content hash under var/evidence.

A unit's report, a case's photos as found and an objection's evidence all come through ``read_photos`` and
``store_photo``; the desk and the unit pages serve them back by name (``evidence_path``).
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from store.settings import get_settings

MAX_NOTE = 2000
MAX_FILES = 6
MAX_FILE_BYTES = 10 * 1024 * 1024
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png"}
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}  # what a stored photo is served as: its validated kind
MAX_PIXELS = 64_000_000  # a 50-megapixel phone photo fits; Pillow warns at 89 million and refuses at 179 million
EXIF_IFD, EXIF_TAKEN, EXIF_CHANGED = 0x8769, 36867, 306  # Exif sub-IFD, DateTimeOriginal, DateTime


class Photo:
    def __init__(self, data: bytes, kind: str, taken: str) -> None:
        self.data, self.kind, self.taken = data, kind, taken


def read_photos(note: str, files: list[UploadFile]) -> tuple[list[Photo], str]:
    """The uploaded photos, or a problem in Chinese for the unit to fix."""
    if len(note) > MAX_NOTE:
        return [], f"说明最多 {MAX_NOTE} 字，当前 {len(note)} 字。"
    if len(files) > MAX_FILES:
        return [], f"最多上传 {MAX_FILES} 张照片，本次选择了 {len(files)} 张。"
    photos = []
    for upload in files:
        data = upload.file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return [], f"照片“{upload.filename}”超过 10 MB，请压缩后重新选择。"
        try:
            photos.append(_inspect(data))
        except BadPhoto as bad:
            return [], bad.message(upload.filename or "")
    return photos, ""


class BadPhoto(Exception):
    """An upload refused: not a JPEG or PNG Pillow can read, or more pixels than a photo of a site needs."""

    def __init__(self, oversized: bool = False) -> None:
        self.oversized = oversized

    def message(self, filename: str) -> str:
        if self.oversized:
            return f"照片“{filename}”像素过多（超过 {MAX_PIXELS // 1_000_000} 百万像素），请缩小后重新选择。"
        return f"文件“{filename}”不是 JPEG 或 PNG 图片，请重新选择。"


def _inspect(data: bytes) -> Photo:
    """A JPEG or PNG that Pillow can read, with the capture time its EXIF gives, if any. Raises BadPhoto."""
    try:
        with Image.open(io.BytesIO(data)) as image:  # verify() must come straight after open, and ends the image
            kind = IMAGE_FORMATS.get(image.format or "")
            _check_pixels(image.size)
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
    except Image.DecompressionBombError:  # a size Pillow refuses at open: a bomb, not a photo
        raise BadPhoto(oversized=True) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BadPhoto from None
    if kind is None:
        raise BadPhoto
    taken = exif.get_ifd(EXIF_IFD).get(EXIF_TAKEN) or exif.get(EXIF_CHANGED) or ""
    return Photo(data, kind, _exif_time(str(taken)))


def _check_pixels(size: tuple[int, int]) -> None:
    """Refuse before anything is decoded: a few bytes can declare an image that would fill the memory."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise BadPhoto(oversized=True)


def _exif_time(value: str) -> str:
    """EXIF writes "2026:02:03 09:12:00"; show "2026-02-03 09:12", or nothing when it is not a date."""
    try:
        return datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def store_photo(data: bytes, kind: str) -> str:
    """Keep a photo under var/evidence by its content hash; the same photo twice is stored once."""
    digest = hashlib.sha256(data).hexdigest()
    folder = get_settings().var_dir / "evidence" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.{kind}"
    if not path.exists():
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
    return f"{digest}.{kind}"


def evidence_path(name: str) -> str | None:
    """The file behind a stored evidence name, or None for a name that is not one of ours."""
    stem, _, kind = name.partition(".")
    if len(stem) != 64 or any(c not in "0123456789abcdef" for c in stem) or kind not in MEDIA_TYPES:
        return None
    path = get_settings().var_dir / "evidence" / stem[:2] / name
    return str(path) if path.exists() else None


def evidence_media_type(name: str) -> str:
    """The content type of a stored photo: the kind validated at upload, which its stored name ends with."""
    return MEDIA_TYPES[name.rpartition(".")[2]]
