"""The leaders' dashboard, the desk's front page: this month against last, by district, the trend, the worst units."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
