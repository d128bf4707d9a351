"""All configuration in one typed place (DESIGN principle 9).

Every value comes from a ``DUTIES_*`` environment variable and has a default that runs on one machine.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUTIES_", extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Runtime data: SQLite store, secret key, inbox")
    database_url: str = ""
    calendars: Path = Path("calendars")
    secret_key: str = ""
    unannounced_seed: str = ""
    base_url: str = "http://127.0.0.1:8000"
    tz: str = "Asia/Shanghai"
    plan_horizon_days: int = Field(default=62, ge=1, le=3660)
    link_valid_days: int = Field(default=90, ge=1)
    send_windows: bool = Field(default=True, description="False sends at any hour (the local demo does)")
    send_concurrency: int = Field(default=8, ge=1, le=64, description="Messages the outbox sends at once; 1: in turn")
    send_per_host: int = Field(default=8, ge=1, le=64, description="Of those, at most this many to one host at once")
    prefect_port: int = Field(default=4200, description="Port of the local Prefect server `duties serve` starts")
    pdf_font: str = Field(
        default="",
        description="A CJK font (.ttc/.ttf/.otf) for the printable 通报; empty: the first of flows.reports.FONTS found",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated IPs/CIDRs whose X-Forwarded-For and X-Forwarded-Proto are believed; empty: none",
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:  # a typo fails at start-up, not at the first tick
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("不是已知的时区名（如 Asia/Shanghai）") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        try:  # a typo fails at start-up rather than trusting nobody silently
            _networks(value)
        except ValueError:
            raise ValueError("须为逗号分隔的 IP 地址或网段（如 127.0.0.1,10.0.0.0/8）") from None
        return value

    @property
    def trusted_networks(self) -> list[IPv4Network | IPv6Network]:
        return _networks(self.trusted_proxies)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'duties.db').resolve()}"


def _networks(value: str) -> list[IPv4Network | IPv6Network]:
    return [ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]


class SettingsError(Exception):
    """A DUTIES_* variable that cannot be used; the message names it and says what it must be, in Chinese."""


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as problems:
        raise SettingsError("；".join(_explain(problem) for problem in problems.errors())) from None


def _explain(problem: ErrorDetails) -> str:
    name = "DUTIES_" + "_".join(str(part) for part in problem["loc"]).upper()
    limits = problem.get("ctx") or {}
    needs = {
        "greater_than_equal": f"须不小于 {limits.get('ge')}",
        "greater_than": f"须大于 {limits.get('gt')}",
        "less_than_equal": f"须不大于 {limits.get('le')}",
        "int_parsing": "须为整数",
        "bool_parsing": "须为 true 或 false",
    }.get(problem["type"], str(limits.get("error") or problem["msg"]))
    return f"环境变量 {name}={problem.get('input')!s} 无效：{needs}"
