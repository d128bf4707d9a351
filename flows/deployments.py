"""Read prefect.yaml with Prefect's own models, checking every schedule, and turn it into served deployments."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def load_prefect_yaml(path: Path = PREFECT_YAML) -> PrefectYamlModel:
    """The validated file. Raises ValueError (pydantic's ValidationError included) for any bad deployment."""
    model = PrefectYamlModel.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    for deployment in model.deployments:
        if not deployment.name or not deployment.entrypoint:
            raise ValueError(f"every deployment needs a name and an entrypoint: {deployment!r}")
        for schedule in deployment.schedules or []:
            check_schedule(deployment.name, schedule)
    return model


def check_schedule(name: str, schedule: Any) -> None:
    # PrefectYamlModel keeps cron as a plain string and `prefect deploy` only warns, so check each one here.
    if not isinstance(schedule, RawScheduleConfig):
        raise ValueError(f"deployment {name}: unsupported schedule {schedule!r}")
    if not schedule.timezone:
        raise ValueError(f"deployment {name}: give every schedule a timezone (Asia/Shanghai)")
    if schedule.cron is not None:
        CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    elif schedule.interval is not None:
        anchor = datetime.fromisoformat(schedule.anchor_date) if schedule.anchor_date else None
        if anchor is None or anchor.tzinfo is None:
            raise ValueError(f"deployment {name}: give an interval an anchor_date with its offset (+08:00)")
        IntervalSchedule(interval=schedule.interval, anchor_date=anchor, timezone=schedule.timezone)
    else:
        RRuleSchedule(rrule=schedule.rrule or "", timezone=schedule.timezone)


def runner_deployments(model: PrefectYamlModel) -> list[Any]:
    """The same deployments, with the same schedules, for prefect.serve() on one machine."""
    from prefect.deployments.runner import RunnerDeployment

    return [
        RunnerDeployment.from_entrypoint(
            entrypoint=deployment.entrypoint or "",
            name=deployment.name or "",
            parameters=deployment.parameters or {},
            concurrency_limit=getattr(deployment, "concurrency_limit", None),
            schedules=[served_schedule(s) for s in deployment.schedules or []],
        )
        for deployment in model.deployments
    ]


def served_schedule(schedule: Any) -> Any:
    from prefect.schedules import Cron, Interval, RRule

    if schedule.cron is not None:
        return Cron(schedule.cron, timezone=schedule.timezone)
    if schedule.interval is not None:
        anchor = datetime.fromisoformat(schedule.anchor_date) if schedule.anchor_date else None
        return Interval(schedule.interval, anchor_date=anchor, timezone=schedule.timezone)
    return RRule(schedule.rrule, timezone=schedule.timezone)
