"""The distributed loop: a real Prefect server, two process workers, the duties store on the PostgreSQL at
127.0.0.1:5432, deployments registered with `prefect deploy --all`, and overlapping tick runs over a ledger with
1,000 due reminders. Every reminder reaches the loopback receiver once, and Prefect shows every run completed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from notify.receivers import Inbox
from store import db

REPO = Path(__file__).resolve().parent.parent
UNITS = 1000
AT = "2026-02-02T09:30"  # the Monday morning the load-test duty's reminder is due
POOL = "duties-test-pool"

pytestmark = [pytest.mark.flows, pytest.mark.postgres]


def load_test_calendar(folder: Path, inbox: Inbox) -> None:
    """1,000 units of their own kind, each with a webhook, and one weekly duty that reminds them all at once."""
    units = [
        {
            "id": f"load-{n:04d}",
            "name": f"压力测试单位{n}",
            "kind": "load_test",
            "district": "wuxing",
            "contacts": [{"name": "webhook", "url": inbox.hook_url(f"hook/load-{n:04d}")}],
        }
        for n in range(UNITS)
    ]
    duty = {
        "id": "load-weekly",
        "family": "压力测试",
        "title": "每周自查",
        "clause": "附件1 第6项 举措2",
        "quote": "每周不少于1次。",
        "lead": ["city-office"],
        "assignees": ["kind:load_test"],
        "recurrence": {"rrule": "FREQ=WEEKLY", "period": "week"},
        "due": {"rule": "last_workday", "time": "17:00"},
        "reminders": [4],  # Monday 09:00, four days before Friday's due date
        "remind_time": "09:00",
        "inferred": True,
        "assumption": "测试用。",
    }
    text = yaml.safe_dump({"units": units, "duties": [duty]}, allow_unicode=True)
    (folder / "huzhou" / "load_test.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def workers(prefect_api: str, store: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Deploy prefect.yaml (without its schedules, and without the tick's limit of one run, so runs overlap) and
    start two process workers with the store's environment."""
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "DUTIES_SEND_WINDOWS": "false",
    }
    project = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    for deployment in project["deployments"]:
        deployment.pop("schedules", None)
        deployment.pop("concurrency_limit", None)
        deployment["work_pool"] = {"name": POOL}
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(project, allow_unicode=True), encoding="utf-8")
    prefect = str(Path(sys.executable).parent / "prefect")
    for command in (
        [prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")],
    ):
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    started = [
        subprocess.Popen(
            [prefect, "worker", "start", "--pool", POOL, "--name", f"test-worker-{n}", "--limit", "4"],
            env=env,
            cwd=REPO,
            stdout=(tmp_path / f"worker-{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n in (1, 2)
    ]
    try:
        yield env
    finally:
        for worker in started:
            worker.send_signal(signal.SIGINT)
        for worker in started:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


async def run_all(moments: list[str]) -> list[Any]:
    """Create one tick run per moment, all before any finishes, then wait for each with Prefect's own wait."""
    from prefect.deployments import arun_deployment
    from prefect.flow_runs import wait_for_flow_run

    runs = [await arun_deployment("duties-tick/tick", parameters={"at": m}, timeout=0) for m in moments]
    return list(await asyncio.gather(*(wait_for_flow_run(run.id, timeout=300, poll_interval=1) for run in runs)))


@pytest.mark.parametrize("any_database_url", ["postgresql"], indirect=True)
def test_overlapping_ticks_on_two_workers_deliver_each_reminder_once(
    calendars_dir: Path, fresh_inbox: Inbox, workers: dict[str, str]
) -> None:
    from flows import runtime, steps
    from flows.runtime import make_context

    load_test_calendar(calendars_dir, fresh_inbox)
    program = runtime.load_calendars()
    at = runtime.parse_moment(AT)
    with db.session_scope() as session:
        steps.sync_program(session, program, at=at)
        ctx = make_context(session, program)
        week = {"start": date(2026, 2, 1), "end": date(2026, 2, 8)}
        assert steps.plan(session, ctx, **week, at=at, only={"load-weekly"}) == UNITS
    # A schedule that fires three times at once, and two more ticks a minute later, all overlapping.
    moments = [AT, AT, AT, "2026-02-02T09:31", "2026-02-02T09:31"]
    finished = asyncio.run(run_all(moments))
    outcomes = [(run.state.type.value, run.state.message) for run in finished if run.state]
    assert [kind for kind, _ in outcomes] == ["COMPLETED"] * len(moments), outcomes
    hooks = [post for post in fresh_inbox.posts if post.path.startswith("/hook/load-")]
    per_unit = Counter(post.path for post in hooks)
    assert len(per_unit) == UNITS and set(per_unit.values()) == {1}, "a reminder went missing or arrived twice"
    assert len({post.key for post in hooks}) == UNITS and "" not in {post.key for post in hooks}
