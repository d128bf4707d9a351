"""The scheduler process of `duties serve`: serves prefect.yaml's deployments and runs one tick at start."""

from __future__ import annotations

import threading
import time

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from flows.deployments import load_prefect_yaml, runner_deployments


def first_tick(name: str = "duties-tick/tick", timeout: float = 120) -> None:
    """Start one tick as soon as serve() has registered it, so the first reminders need not wait for the schedule."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                client.read_deployment_by_name(name)
                break
            except ObjectNotFound:
                time.sleep(0.5)
    run_deployment(name, timeout=0)


def main() -> None:
    deployments = runner_deployments(load_prefect_yaml())
    threading.Thread(target=first_tick, daemon=True).start()
    # pause_on_shutdown=False: stopping the service must not leave the schedules paused for the next start.
    serve(*deployments, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
