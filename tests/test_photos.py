"""Evidence that can be trusted (issue 15): a photo's EXIF capture time and GPS point are read, its pixels are
stored upright, an iPhone's HEIC is stored as a JPEG (or refused in Chinese), thumbnails are made once, and the
verifier gets flags (never a refusal) for a photo taken outside the item's time or far from its place."""

from __future__ import annotations

import io
import os
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pillow_heif
import pytest
from fastapi import UploadFile
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlmodel import Session

from flows.steps import Context
from store.models import Confirmation, Occurrence
from tests.conftest import local
from tests.web_support import Clock, path_of, png
from web import photos

SHANGHAI = ZoneInfo("Asia/Shanghai")
RED, BLUE = (220, 20, 20), (20, 20, 220)
HUZHOU, HANGZHOU = (30.8703, 120.0933), (30.2741, 120.1551)


def dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    """Degrees as EXIF writes them: degrees, minutes, and seconds to 1/10000."""
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction(round((value - degrees - minutes / 60) * 3600 * 10000), 10000)
    return Fraction(degrees), Fraction(minutes), seconds


def exif_of(taken: str = "", gps: tuple[float, float] | None = None, orientation: int = 0) -> Image.Exif:
    exif = Image.Exif()
    if taken:
        exif.get_ifd(photos.EXIF_IFD)[photos.EXIF_TAKEN] = taken
    if gps is not None:
        lat, lon = gps
        exif.get_ifd(photos.GPS_IFD).update(
            {1: "N" if lat >= 0 else "S", 2: dms(abs(lat)), 3: "E" if lon >= 0 else "W", 4: dms(abs(lon))}
        )
    if orientation:
        exif[photos.EXIF_ORIENTATION] = orientation
    return exif


def two_colours(width: int = 40, height: int = 20) -> Image.Image:
    """Red on the left half, blue on the right: which way it was turned shows."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def encoded(image: Image.Image, fmt: str, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"exif": exif.tobytes()} if exif is not None else {}))
    return buffer.getvalue()


def upload(data: bytes, filename: str = "现场.jpg") -> UploadFile:
    return UploadFile(file=io.BytesIO(data), filename=filename)


def read_one(data: bytes, filename: str = "现场.jpg") -> photos.Photo:
    found, problem = photos.read_photos("", [upload(data, filename)])
    assert problem == "" and len(found) == 1
    return found[0]


def near(pixel: Any, colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 40 for a, b in zip(pixel[:3], colour, strict=True))


# ---------------------------------------------------------------- EXIF time, GPS and orientation


def test_a_jpeg_s_capture_time_and_gps_point_are_read_to_a_millionth_of_a_degree() -> None:
    data = encoded(two_colours(), "JPEG", exif_of("2026:03:01 08:05:41", (30.870312, -120.093345)))
    photo = read_one(data)
    assert photo.kind == "jpg" and photo.taken == "2026-03-01 08:05"
    assert photo.gps is not None
    assert photo.gps[0] == pytest.approx(30.870312, abs=1e-6) and photo.gps[1] == pytest.approx(-120.093345, abs=1e-6)
    assert photo.data == data  # upright already: the bytes are stored as uploaded, not re-encoded


def test_a_south_western_point_is_negative_and_no_gps_is_none() -> None:
    south_west = read_one(encoded(two_colours(), "JPEG", exif_of(gps=(-33.8688, -151.2093))))
    assert south_west.gps == pytest.approx((-33.8688, -151.2093), abs=1e-6)
    assert read_one(encoded(two_colours(), "JPEG")).gps is None
    assert read_one(encoded(two_colours(), "JPEG", exif_of("2026:03:01 08:05:41"))).gps is None


def test_a_zero_point_or_a_broken_rational_is_no_point() -> None:
    zero = Image.Exif()
    zero.get_ifd(photos.GPS_IFD).update({1: "N", 2: (0, 0, 0), 3: "E", 4: (0, 0, 0)})
    assert photos.gps_of(zero) is None
    out_of_range = Image.Exif()
    out_of_range.get_ifd(photos.GPS_IFD).update({1: "N", 2: (95, 0, 0), 3: "E", 4: (10, 0, 0)})
    assert photos.gps_of(out_of_range) is None
    half = Image.Exif()
    half.get_ifd(photos.GPS_IFD).update({1: "N", 2: (30, 0, 0)})  # a latitude without a longitude
    assert photos.gps_of(half) is None


def test_a_turned_jpeg_is_stored_upright_with_its_time_and_gps_still_readable(settings_env: Path) -> None:
    """Orientation 6: the camera was held upright, the sensor wrote the picture on its side; a viewer turns it
    90° clockwise. Stored upright, it is 20 × 40 with the left (red) half on top, and its EXIF keeps the time and
    point but no Orientation, so no browser turns it a second time."""
    data = encoded(two_colours(40, 20), "JPEG", exif_of("2026:03:01 08:05:41", HUZHOU, orientation=6))
    photo = read_one(data)
    assert photo.taken == "2026-03-01 08:05" and photo.gps == pytest.approx(HUZHOU, abs=1e-6)
    name = photos.store_photo(photo.data, photo.kind)
    path = photos.evidence_path(name)
    assert path is not None and name.endswith(".jpg")
    with Image.open(path) as stored:
        assert stored.size == (20, 40)
        rgb = stored.convert("RGB")
        assert near(rgb.getpixel((10, 5)), RED) and near(rgb.getpixel((10, 35)), BLUE)
        exif = stored.getexif()
        assert exif.get(photos.EXIF_ORIENTATION, 1) == 1
    again = read_one(Path(path).read_bytes())  # what the desk reads back from the stored file
    assert again.taken == "2026-03-01 08:05" and again.gps == pytest.approx(HUZHOU, abs=1e-6)


def test_the_same_turned_photo_twice_is_stored_once(settings_env: Path) -> None:
    data = encoded(two_colours(), "JPEG", exif_of("2026:03:01 08:05:41", orientation=8))
    first, second = read_one(data), read_one(data)
    assert photos.store_photo(first.data, first.kind) == photos.store_photo(second.data, second.kind)


# ---------------------------------------------------------------- HEIC


def heic(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    pillow_heif.register_heif_opener()
    return encoded(image, "HEIF", exif)


def test_an_iphone_heic_is_accepted_and_stored_as_a_jpeg_with_its_time_and_gps(settings_env: Path) -> None:
    data = heic(two_colours(64, 32), exif_of("2026:03:01 08:05:41", HUZHOU))
    assert data[4:12] == b"ftypheic"
    photo = read_one(data, "IMG_0001.HEIC")
    assert photo.kind == "jpg" and photo.data[:3] == b"\xff\xd8\xff"  # a JPEG's first bytes
    assert photo.taken == "2026-03-01 08:05" and photo.gps == pytest.approx(HUZHOU, abs=1e-6)
    name = photos.store_photo(photo.data, photo.kind)
    assert name.endswith(".jpg") and photos.evidence_media_type(name) == "image/jpeg"
    path = photos.evidence_path(name)
    assert path is not None
    with Image.open(path) as stored:
        assert stored.format == "JPEG" and stored.size == (64, 32)
        assert near(stored.convert("RGB").getpixel((5, 16)), RED)
    assert read_one(Path(path).read_bytes()).gps == pytest.approx(HUZHOU, abs=1e-6)


def test_a_heic_with_transparency_is_stored_as_an_rgb_jpeg() -> None:
    photo = read_one(heic(Image.new("RGBA", (16, 16), (10, 200, 10, 128))), "a.heic")
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert stored.format == "JPEG" and stored.mode == "RGB"


def test_a_turned_heic_is_turned_once() -> None:
    """HEIF turns its pixels itself (pillow_heif applies the irot box and resets EXIF's Orientation to 1): the
    stored JPEG must not be turned a second time."""
    photo = read_one(heic(two_colours(40, 20), exif_of("2026:03:01 08:05:41", orientation=6)), "IMG_0004.HEIC")
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert stored.size == (20, 40) and stored.getexif().get(photos.EXIF_ORIENTATION, 1) == 1
        rgb = stored.convert("RGB")
        assert near(rgb.getpixel((10, 5)), RED) and near(rgb.getpixel((10, 35)), BLUE)


@pytest.mark.parametrize("cut", [60, 200], ids=["header-only", "truncated"])
def test_a_corrupt_heic_is_refused_with_a_clear_message(cut: int, settings_env: Path) -> None:
    data = heic(two_colours(64, 32), exif_of("2026:03:01 08:05:41"))[:cut]
    found, problem = photos.read_photos("", [upload(data, "IMG_0002.HEIC")])
    assert found == []
    assert problem.startswith("照片“IMG_0002.HEIC”是 HEIC 格式，但无法读取或转换为 JPEG")
    assert "兼容性最佳" in problem
    assert not (settings_env / "var" / "evidence").exists()


# ---------------------------------------------------------------- refusals kept


def test_a_file_that_is_no_image_is_refused_as_before() -> None:
    found, problem = photos.read_photos("", [upload(b"%PDF-1.7 not a photo", "report.pdf")])
    assert found == [] and "文件“report.pdf”不是 JPEG 或 PNG 图片" in problem and "HEIC" in problem


def test_a_gif_is_refused_though_pillow_reads_it() -> None:
    found, problem = photos.read_photos("", [upload(encoded(two_colours(), "GIF"), "a.gif")])
    assert found == [] and "不是 JPEG 或 PNG 图片" in problem


def test_an_oversize_file_and_too_many_files_are_refused() -> None:
    big = b"\xff\xd8\xff" + os.urandom(photos.MAX_FILE_BYTES)
    found, problem = photos.read_photos("", [upload(big, "big.jpg")])
    assert found == [] and problem == "照片“big.jpg”超过 10 MB，请压缩后重新选择。"
    many = [upload(png(), f"{n}.png") for n in range(photos.MAX_FILES + 1)]
    too_many = f"最多上传 {photos.MAX_FILES} 张照片，本次选择了 {photos.MAX_FILES + 1} 张。"
    assert photos.read_photos("", many) == ([], too_many)


def test_a_png_is_kept_as_uploaded() -> None:
    photo = read_one(png(3), "a.png")
    assert photo.kind == "png" and photo.data == png(3) and photo.taken == "" and photo.gps is None


# ---------------------------------------------------------------- thumbnails


def test_a_thumbnail_is_smaller_than_its_size_made_once_and_kept(settings_env: Path) -> None:
    photo = read_one(encoded(two_colours(1200, 800), "JPEG", exif_of("2026:03:01 08:05:41")))
    name = photos.store_photo(photo.data, photo.kind)
    path = photos.thumbnail_path(name)
    assert path is not None and Path(path).parent == settings_env / "var" / "evidence" / "thumbs" / "360"
    with Image.open(path) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (360, 240)
    made = os.stat(path).st_mtime_ns
    os.utime(path, ns=(made - 10**9, made - 10**9))  # a second call must not write it again
    assert photos.thumbnail_path(name) == path and os.stat(path).st_mtime_ns == made - 10**9
    assert not list(Path(path).parent.glob("*.part"))
    small = photos.thumbnail_path(name, size=100)
    assert small is not None and small != path
    with Image.open(small) as thumb:
        assert max(thumb.size) == 100


def test_a_png_thumbnail_is_a_jpeg_and_a_small_photo_is_not_enlarged(settings_env: Path) -> None:
    name = photos.store_photo(png(3), "png")
    path = photos.thumbnail_path(name)
    assert path is not None and path.endswith(".jpg")
    with Image.open(path) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (3, 1)


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "a" * 64 + ".jpg", "0" * 64 + ".gif", "thumbs", "", "0" * 63 + ".jpg"],
)
def test_a_thumbnail_of_a_name_that_is_not_ours_is_none(name: str, settings_env: Path) -> None:
    assert photos.thumbnail_path(name) is None


def test_a_thumbnail_of_an_unreasonable_size_is_none(settings_env: Path) -> None:
    name = photos.store_photo(png(3), "png")
    assert photos.thumbnail_path(name, size=0) is None and photos.thumbnail_path(name, size=100_000) is None


# ---------------------------------------------------------------- distance and flags


@pytest.mark.parametrize(
    ("a", "b", "metres", "tolerance"),
    [
        (HUZHOU, HANGZHOU, 66_560, 100),  # 湖州 to 杭州, about 66.6 km
        ((39.9042, 116.4074), (31.2304, 121.4737), 1_067_000, 5_000),  # 北京 to 上海
        ((0.0, 0.0), (0.0, 1.0), 111_195, 10),  # a degree of longitude on the equator
        ((0.0, 0.0), (1.0, 0.0), 111_195, 10),  # a degree of latitude
        (HUZHOU, HUZHOU, 0, 0),
        ((0.0, 0.0), (0.0, 180.0), 20_015_114, 10),  # half the way round: π × the mean radius
    ],
)
def test_distance_against_known_pairs(
    a: tuple[float, float], b: tuple[float, float], metres: float, tolerance: float
) -> None:
    assert photos.distance_m(a, b) == pytest.approx(metres, abs=tolerance)
    assert photos.distance_m(b, a) == pytest.approx(photos.distance_m(a, b))


START, END = local("2026-03-01 08:00"), local("2026-03-01 10:30")
PLACE = (30.8703, 120.0933)
# about 2.3 km north of PLACE: 2300 m / 111,195 m per degree of latitude
FAR = (30.8703 + 2300 / 111_195, 120.0933)
CLOSE = (30.8703 + 300 / 111_195, 120.0933)


@pytest.mark.parametrize(
    ("taken", "gps", "place", "flags"),
    [
        ("2026-03-01 09:00", CLOSE, PLACE, []),
        ("2026-03-01 08:00", PLACE, PLACE, []),  # the minute it started: not before
        ("2026-03-01 10:30", PLACE, PLACE, []),  # the minute it ended: not after
        ("2026-03-01 07:59", PLACE, PLACE, ["拍摄于 2026-03-01 07:59，早于事项开始（2026-03-01 08:00）"]),
        ("2026-02-27 18:00", None, None, ["拍摄于 2026-02-27 18:00，早于事项开始（2026-03-01 08:00）"]),
        ("2026-03-01 10:31", PLACE, PLACE, ["拍摄于 2026-03-01 10:31，晚于处置时限（2026-03-01 10:30）"]),
        ("2026-03-01 09:00", FAR, PLACE, ["拍摄地点距案件地点约 2.3 公里（超过 500 米）"]),
        ("2026-03-01 09:00", [FAR[0], FAR[1]], PLACE, ["拍摄地点距案件地点约 2.3 公里（超过 500 米）"]),
        ("", CLOSE, PLACE, ["无拍摄时间"]),
        (None, CLOSE, PLACE, ["无拍摄时间"]),
        ("not a time", CLOSE, PLACE, ["无拍摄时间"]),
        ("2026-03-01 09:00", None, PLACE, ["无定位信息"]),
        ("2026-03-01 09:00", [], PLACE, ["无定位信息"]),
        ("2026-03-01 09:00", None, None, []),  # the place has no point: nothing to compare a point with
        ("2026-03-01 09:00", FAR, None, []),
        (None, None, PLACE, ["无拍摄时间", "无定位信息"]),
        (
            "2026-03-02 09:00",
            FAR,
            PLACE,
            [
                "拍摄于 2026-03-02 09:00，晚于处置时限（2026-03-01 10:30）",
                "拍摄地点距案件地点约 2.3 公里（超过 500 米）",
            ],
        ),
    ],
)
def test_photo_flags(
    taken: str | None,
    gps: list[float] | tuple[float, float] | None,
    place: tuple[float, float] | None,
    flags: list[str],
) -> None:
    assert photos.photo_flags(taken, gps, start=START, end=END, place=place, radius_m=500, zone=SHANGHAI) == flags


def test_flags_read_the_wall_clock_in_the_programme_s_zone_and_the_bounds_in_it_too() -> None:
    """EXIF has no zone: 08:30 on a phone in 湖州 is 00:30 UTC. Bounds given in UTC are shown in local time."""
    start = datetime.fromisoformat("2026-03-01T00:00:00+00:00")  # 08:00 in Shanghai
    end = datetime.fromisoformat("2026-03-01T02:30:00+00:00")  # 10:30 in Shanghai
    kwargs = {"start": start, "end": end, "place": None, "radius_m": 500}
    assert photos.photo_flags("2026-03-01 08:30", None, zone=SHANGHAI, **kwargs) == []  # type: ignore[arg-type]
    assert photos.photo_flags("2026-03-01 08:30", None, zone=ZoneInfo("UTC"), **kwargs) == [  # type: ignore[arg-type]
        "拍摄于 2026-03-01 08:30，晚于处置时限（2026-03-01 02:30）"
    ]


def test_a_near_photo_is_in_metres_and_a_radius_in_kilometres_reads_as_kilometres() -> None:
    point = (30.8703 + 800 / 111_195, 120.0933)
    bounds = {"start": START, "end": END, "place": PLACE, "zone": SHANGHAI}
    flags = photos.photo_flags("2026-03-01 09:00", point, radius_m=500, **bounds)  # type: ignore[arg-type]
    assert flags == ["拍摄地点距案件地点约 800 米（超过 500 米）"]
    far = photos.photo_flags("2026-03-01 09:00", FAR, radius_m=2000, **bounds)  # type: ignore[arg-type]
    assert far == ["拍摄地点距案件地点约 2.3 公里（超过 2 公里）"]


# ---------------------------------------------------------------- through the unit's report page


def test_a_report_keeps_each_photo_s_time_and_gps_point_and_stores_a_heic_upright_as_jpeg(
    client: TestClient, ctx: Context, session: Session, item: Occurrence, now: Clock
) -> None:
    turned = encoded(two_colours(40, 20), "JPEG", exif_of("2026:02:03 09:12:00", HUZHOU, orientation=6))
    iphone = heic(two_colours(64, 32), exif_of("2026:02:03 09:40:00", HANGZHOU))
    no_exif = png(2)
    uploads = [
        ("evidence", ("turned.jpg", turned, "image/jpeg")),
        ("evidence", ("IMG_0003.HEIC", iphone, "image/heic")),
        ("evidence", ("plain.png", no_exif, "image/png")),
    ]
    response = client.post(path_of(ctx, item, now.at), data={"note": "整改照片见附件"}, files=uploads)
    assert response.status_code == 200 and response.headers["X-Duties-Outcome"] == "confirmed"
    report = session.execute(select(Confirmation)).scalar_one()
    turned_name, iphone_name, png_name = report.evidence
    assert turned_name.endswith(".jpg") and iphone_name.endswith(".jpg") and png_name.endswith(".png")
    assert report.evidence_taken == {turned_name: "2026-02-03 09:12", iphone_name: "2026-02-03 09:40"}
    assert set(report.evidence_gps) == {turned_name, iphone_name}  # the PNG has no point: no entry
    assert report.evidence_gps[turned_name] == pytest.approx(list(HUZHOU), abs=1e-6)
    assert report.evidence_gps[iphone_name] == pytest.approx(list(HANGZHOU), abs=1e-6)
    stored = photos.evidence_path(turned_name)
    assert stored is not None
    with Image.open(stored) as upright:
        assert upright.size == (20, 40)
