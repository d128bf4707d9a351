"""`duties serve`: the web app plus the scheduled flows on one machine.

The ephemeral Prefect server has no scheduler, so this starts a real local one (SQLite under var/prefect), then a
runner process that serves the deployments of prefect.yaml. If PREFECT_API_URL is already set, that server is
used instead. The web app answers at once; the scheduler comes up in the background.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from store.settings import get_settings

PREFECT_QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "true",
    "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
}


def run_service(*, host: str, port: int, scheduler: bool, receivers: bool, workers: int = 1) -> None:
    children: list[subprocess.Popen[bytes]] = []
    # uvicorn re-raises SIGTERM after its own shutdown; turn it into SystemExit so the children are stopped below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    logs = get_settings().var_dir.resolve() / "log"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        if receivers:
            children.append(spawn([sys.executable, "-m", "flows.cli", "receivers"], logs / "receivers.log"))
            # The demo's messages go to local receivers, so they need not wait for office hours to be seen.
            os.environ.setdefault("DUTIES_SEND_WINDOWS", "false")
        if scheduler:
            threading.Thread(target=_start_scheduler, args=(children, logs), daemon=True).start()
        # proxy_headers off: web.proxies alone decides which proxies to believe (DUTIES_TRUSTED_PROXIES).
        if workers > 1:  # several processes: uvicorn imports the app by name in each of them
            uvicorn.run("web.app:app", host=host, port=port, log_level="info", workers=workers, proxy_headers=False)
        else:
            from web.app import app

            uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    finally:
        for child in reversed(children):
            stop(child)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_scheduler(children: list[subprocess.Popen[bytes]], logs: Path) -> None:
    env = dict(os.environ)
    if not env.get("PREFECT_API_URL"):
        settings = get_settings()
        home = settings.var_dir.resolve() / "prefect"
        env.update(PREFECT_QUIET, PREFECT_HOME=str(home))
        port = settings.prefect_port
        command = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"]
        children.append(spawn([str(Path(sys.executable).parent / command[0]), *command[1:]], logs / "prefect.log", env))
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        if not wait_healthy(env["PREFECT_API_URL"], timeout=120):
            print(f"Prefect 服务器未能启动，见 {logs / 'prefect.log'}", file=sys.stderr, flush=True)
            return
    print(f"Prefect 服务器：{env['PREFECT_API_URL']}（界面 {env['PREFECT_API_URL'].removesuffix('/api')}）", flush=True)
    children.append(spawn([sys.executable, "-m", "flows.runner"], logs / "runner.log", env))


def wait_healthy(api_url: str, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return True
        time.sleep(0.5)
    return False


def spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
