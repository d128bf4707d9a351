"""The desk's assessments: each period's ranking and 红黑榜, the units' deductions, the 异议 to decide, publication."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
