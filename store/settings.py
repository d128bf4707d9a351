"""All configuration in one typed place (DESIGN principle 9).

Every value comes from a ``DUTIES_*`` environment variable and has a default that runs on one machine.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
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
    prefect_port: int = Field(default=4200, description="Port of the local Prefect server `duties serve` starts")
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated IPs/CIDRs whose X-Forwarded-For and X-Forwarded-Proto are believed; empty: none",
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone, so a typo fails at start-up, not at the first tick
        return value

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        _networks(value)  # raises for a typo, so it fails at start-up rather than trusting nobody silently
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


@lru_cache
def get_settings() -> Settings:
    return Settings()
