"""`make distributed`: Prefect's own distributed setup, brought up on one machine to try it out.

    python -m flows.cluster [--workers 2] [--web-workers 2] [--port 8000] [--prefect-port 4200]

It does, in order, what README's "Running it beyond one machine" tells an operator to do on several hosts:
create the `prefect` and `duties` databases on the PostgreSQL at DUTIES_PG (default 127.0.0.1:5432, user
postgres), start a Prefect server on PostgreSQL, create the `duties-pool` process work pool, `prefect deploy --all`
from prefect.yaml, `duties init` against PostgreSQL, start the workers, and serve the web app with several uvicorn
workers. It stays in the foreground; Ctrl-C stops everything it started. Logs go to var/log/cluster-*.log.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from flows.serve import spawn, stop, wait_healthy
from store.settings import get_settings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="Prefect process workers")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes for the web app")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--prefect-port", type=int, default=4200)
    args = parser.parse_args()
    server = os.environ.get("DUTIES_PG", "postgres@127.0.0.1:5432")
    env = environment(server, args.prefect_port)
    logs = get_settings().var_dir.resolve() / "log"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    try:
        for name in ("prefect", "duties"):
            ensure_database(server, name)
        command = ["server", "start", "--host", "127.0.0.1", "--port", str(args.prefect_port), "--analytics-off"]
        children.append(spawn([str(BIN / "prefect"), *command], logs / "cluster-prefect.log", env))
        if not wait_healthy(env["PREFECT_API_URL"], timeout=180):
            sys.exit(f"Prefect 服务器未能启动，见 {logs / 'cluster-prefect.log'}")
        step(env, "prefect", "work-pool", "create", "duties-pool", "--type", "process", "--overwrite")
        step(env, "prefect", "--no-prompt", "deploy", "--all")
        step(env, "duties", "init")
        for number in range(1, args.workers + 1):
            worker = ["worker", "start", "--pool", "duties-pool", "--name", f"duties-worker-{number}"]
            children.append(spawn([str(BIN / "prefect"), *worker], logs / f"cluster-worker-{number}.log", env))
        web = ["serve", "--no-scheduler", "--port", str(args.port), "--workers", str(args.web_workers)]
        children.append(spawn([str(BIN / "duties"), *web], logs / "cluster-web.log", env))
        print(
            f"Prefect 界面 http://127.0.0.1:{args.prefect_port} · 网页 http://127.0.0.1:{args.port} · "
            f"{args.workers} 个 worker · 日志 {logs}/cluster-*.log · Ctrl-C 停止",
            flush=True,
        )
        children[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            stop(child)


def environment(server: str, prefect_port: int) -> dict[str, str]:
    """The environment every process of the cluster shares: both stores on PostgreSQL, one Prefect API."""
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://{server}/prefect",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(get_settings().var_dir.resolve() / "prefect-cluster"),
    )
    env.setdefault("DUTIES_DATABASE_URL", f"postgresql+psycopg://{server}/duties")
    return env


def ensure_database(server: str, name: str) -> None:
    with psycopg.connect(f"postgresql://{server}/postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def step(env: dict[str, str], program: str, *args: str) -> None:
    """One setup command, in the repository (prefect.yaml is there); stop at the first that fails."""
    done = subprocess.run([str(BIN / program), *args], env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{program} {' '.join(args)} 失败：\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"✓ {program} {' '.join(args)}", flush=True)


if __name__ == "__main__":
    main()
