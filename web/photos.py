"""Photos as evidence: read, checked, set upright and kept by content hash under var/evidence.

A unit's report, a case's photos as found and an objection's evidence all come through ``read_photos`` and
``store_photo``; the desk and the unit pages serve them back by name (``evidence_path``, ``thumbnail_path``).
The capture time and GPS point a photo's EXIF gives are read before anything is re-encoded and kept on the
``Photo``; ``photo_flags`` turns them into notes for the verifier (a photo is marked, never refused, for them).
An iPhone's HEIC photo is stored as a JPEG, so every browser can show it.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pillow_heif
from fastapi import UploadFile
from PIL import Image, ImageOps, UnidentifiedImageError

from store.settings import get_settings

pillow_heif.register_heif_opener()  # Image.open reads HEIC/HEIF from here on

MAX_NOTE = 2000
MAX_FILES = 6
MAX_FILE_BYTES = 10 * 1024 * 1024
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "HEIF": "jpg"}  # a HEIC photo is converted and stored as a JPEG
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}  # what a stored photo is served as: its validated kind
MAX_PIXELS = 64_000_000  # a 50-megapixel phone photo fits; Pillow warns at 89 million and refuses at 179 million
EXIF_IFD, EXIF_TAKEN, EXIF_CHANGED = 0x8769, 36867, 306  # Exif sub-IFD, DateTimeOriginal, DateTime
GPS_IFD, EXIF_ORIENTATION = 0x8825, 274
JPEG_QUALITY = 85  # what a re-encoded photo (turned upright, or from HEIC) is saved at: a site photo, not a print
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
EARTH_RADIUS_M = 6_371_008.8  # the mean radius: haversine's error against WGS-84 is under 0.5 %


class Photo:
    """One checked upload: the bytes to store (upright, a JPEG when it came as HEIC), its kind, the capture time
    its EXIF gives ("YYYY-MM-DD HH:MM", local wall clock, or "") and its GPS point (latitude, longitude), if any."""

    def __init__(self, data: bytes, kind: str, taken: str, gps: tuple[float, float] | None = None) -> None:
        self.data, self.kind, self.taken, self.gps = data, kind, taken, gps


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
    """An upload refused: not a JPEG, PNG or HEIC Pillow can read, a HEIC that cannot be turned into a JPEG, or
    more pixels than a photo of a site needs."""

    def __init__(self, oversized: bool = False, heif: bool = False) -> None:
        self.oversized, self.heif = oversized, heif

    def message(self, filename: str) -> str:
        if self.oversized:
            return f"照片“{filename}”像素过多（超过 {MAX_PIXELS // 1_000_000} 百万像素），请缩小后重新选择。"
        if self.heif:
            return (
                f"照片“{filename}”是 HEIC 格式，但无法读取或转换为 JPEG（文件可能已损坏）。"
                "请重新拍摄，或在 iPhone“设置 > 相机 > 格式”中选择“兼容性最佳”后重新选择。"
            )
        return f"文件“{filename}”不是 JPEG 或 PNG 图片（也可上传 iPhone 的 HEIC 照片），请重新选择。"


def _inspect(data: bytes) -> Photo:
    """A JPEG, PNG or HEIC that Pillow can read, with the capture time and GPS point its EXIF gives, set upright
    (and a JPEG, when it came as HEIC). Raises BadPhoto."""
    heif = _looks_heif(data)
    try:
        with Image.open(io.BytesIO(data)) as image:  # verify() must come straight after open, and ends the image
            kind = IMAGE_FORMATS.get(image.format or "")
            heif = heif or image.format == "HEIF"
            _check_pixels(image.size)
            image.verify()
        if kind is None:
            raise BadPhoto
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            taken = exif.get_ifd(EXIF_IFD).get(EXIF_TAKEN) or exif.get(EXIF_CHANGED) or ""
            gps = gps_of(exif)
            if heif or exif.get(EXIF_ORIENTATION, 1) != 1:
                data = _upright_jpeg(image) if kind == "jpg" else _upright_png(image)
    except Image.DecompressionBombError:  # a size Pillow refuses at open: a bomb, not a photo
        raise BadPhoto(oversized=True) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, RuntimeError):  # pillow_heif raises these
        raise BadPhoto(heif=heif) from None
    return Photo(data, kind, _exif_time(str(taken)), gps)


def _looks_heif(data: bytes) -> bool:
    """An ISO media file of a HEIF brand: told apart even when it is too damaged for Pillow to open."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def _upright_jpeg(image: Image.Image) -> bytes:
    """The pixels turned as the EXIF Orientation says, as a JPEG that keeps the EXIF (capture time, GPS) without
    the Orientation: a browser that honours it would turn the photo a second time."""
    upright = ImageOps.exif_transpose(image)
    exif = upright.getexif()
    exif.pop(EXIF_ORIENTATION, None)
    if upright.mode not in ("RGB", "L"):  # HEIC may decode as RGBA or 16-bit; JPEG holds neither
        upright = upright.convert("RGB")
    buffer = io.BytesIO()
    upright.save(buffer, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes())
    return buffer.getvalue()


def _upright_png(image: Image.Image) -> bytes:
    upright = ImageOps.exif_transpose(image)
    exif = upright.getexif()
    exif.pop(EXIF_ORIENTATION, None)
    buffer = io.BytesIO()
    upright.save(buffer, "PNG", exif=exif.tobytes())
    return buffer.getvalue()


def gps_of(exif: Image.Exif) -> tuple[float, float] | None:
    """The GPS point of an EXIF block in degrees (WGS-84, as phones write it), or None when it has none or it is
    not a point on Earth. 0,0 is what some cameras write without a fix: no point."""
    try:
        info = exif.get_ifd(GPS_IFD)
        latitude = _degrees(info[2], info.get(1, "N"), "S")
        longitude = _degrees(info[4], info.get(3, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or (latitude, longitude) == (0.0, 0.0):
        return None  # also NaN: a rational over 0 reads as NaN, and fails both comparisons
    return latitude, longitude


def _degrees(value: Any, ref: Any, negative: str) -> float:
    """Degrees, minutes and seconds (three rationals) with their N/S or E/W reference as signed degrees."""
    dms = [float(part) for part in value] if isinstance(value, (tuple, list)) else [float(value)]
    degrees = sum(part / 60**i for i, part in enumerate(dms[:3]))
    ref = ref.decode(errors="replace") if isinstance(ref, bytes) else str(ref)
    return -degrees if ref.strip("\x00 ").upper() == negative else degrees


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


def distance_m(a: tuple[float, float] | list[float], b: tuple[float, float] | list[float]) -> float:
    """The great-circle distance in metres between two (latitude, longitude) points (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def photo_flags(
    taken: str | None,
    gps: list[float] | tuple[float, ...] | None,
    *,
    start: datetime,
    end: datetime,
    place: tuple[float, float] | None,
    radius_m: int,
    zone: Any,
) -> list[str]:
    """What the verifier should look at twice, in Chinese: no capture time, a capture time before ``start`` or
    after ``end`` (the item's start and its period's end: the report time or the due date, as the caller says),
    no GPS point when the place has one, a point farther than ``radius_m`` from the place. Flags, never a refusal:
    a phone's clock or fix can be wrong, and the verifier decides. ``taken`` is EXIF's local wall clock
    "YYYY-MM-DD HH:MM" (EXIF has no zone), read in ``zone``; it has whole minutes, so minutes are compared."""
    flags = []
    moment = _local(taken, zone)
    if moment is None:
        flags.append("无拍摄时间")
    elif moment < _minute(start, zone):
        flags.append(f"拍摄于 {taken}，早于事项开始（{_shown(start, zone)}）")
    elif moment > _minute(end, zone):
        flags.append(f"拍摄于 {taken}，晚于处置时限（{_shown(end, zone)}）")
    if place is not None:
        point = _point(gps)
        if point is None:
            flags.append("无定位信息")
        elif (metres := distance_m(point, place)) > radius_m:
            flags.append(f"拍摄地点距案件地点约 {_metres(metres)}（超过 {_metres(radius_m)}）")
    return flags


def _local(taken: str | None, zone: Any) -> datetime | None:
    try:
        return datetime.strptime((taken or "").strip(), "%Y-%m-%d %H:%M").replace(tzinfo=zone)
    except ValueError:
        return None


def _minute(moment: datetime, zone: Any) -> datetime:
    return moment.astimezone(zone).replace(second=0, microsecond=0)


def _shown(moment: datetime, zone: Any) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _point(gps: list[float] | tuple[float, ...] | None) -> tuple[float, float] | None:
    if gps is None or len(gps) != 2:
        return None
    return float(gps[0]), float(gps[1])


def _metres(metres: float) -> str:
    """800 米, 2.3 公里, 2 公里: what a verifier reads at a glance."""
    if metres < 1000:
        return f"{round(metres)} 米"
    return f"{metres / 1000:.1f}".removesuffix(".0") + " 公里"


@dataclass(frozen=True)
class Kept:
    """Stored photos by name, with what their EXIF says of when ("YYYY-MM-DD HH:MM") and where each was taken."""

    names: list[str]
    taken: dict[str, str]
    gps: dict[str, list[float]]


def keep(uploaded: list[Photo]) -> Kept:
    """Store each photo (the same photo twice is one name) and keep its capture time and point, where it has them."""
    stored = {store_photo(photo.data, photo.kind): photo for photo in uploaded}
    return Kept(
        names=list(stored),
        taken={name: photo.taken for name, photo in stored.items() if photo.taken},
        gps={name: [float(photo.gps[0]), float(photo.gps[1])] for name, photo in stored.items() if photo.gps},
    )


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


def thumbnail_path(name: str, size: int = 360) -> str | None:
    """A JPEG of the stored photo at most ``size`` pixels on its longer side, made once under
    var/evidence/thumbs and kept; None for a name that is not one of ours (or a photo Pillow no longer reads)."""
    source = evidence_path(name)
    if source is None or not 16 <= size <= 2048:
        return None
    folder = get_settings().var_dir / "evidence" / "thumbs" / str(size)  # "thumbs" is no hash prefix: not hex
    path = folder / f"{name.partition('.')[0]}.jpg"
    if path.exists():
        return str(path)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with Image.open(source) as image:
            small = ImageOps.exif_transpose(image)
            small.thumbnail((size, size))
            if small.mode not in ("RGB", "L"):
                small = small.convert("RGB")
            _write_atomically(path, small)
    except (OSError, ValueError):
        return None
    return str(path)


def _write_atomically(path: Any, image: Image.Image) -> None:
    """Written beside its place and renamed: two requests making the same thumbnail never show a half-written one."""
    handle, partial = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            image.save(out, "JPEG", quality=JPEG_QUALITY)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def evidence_media_type(name: str) -> str:
    """The content type of a stored photo: the kind validated at upload, which its stored name ends with."""
    return MEDIA_TYPES[name.rpartition(".")[2]]
