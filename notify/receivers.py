"""Local receivers on 127.0.0.1: an SMTP server (aiosmtpd) and an HTTP webhook receiver.

``make run`` starts them so the demo units' messages really arrive (written under ``var/inbox/``), and the tests use
the same classes to take messages, and the links in them, out of what actually arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from notify.send import IDEMPOTENCY_HEADER


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mail:
    recipients: list[str]
    subject: str
    body: str
    key: str = ""  # the sender's idempotency key header, if any
    sender: str = ""  # the From header as a mail client shows it, display name included
    parts: list[str] = field(default_factory=list)  # the content types of its parts, e.g. text/plain, text/html


@dataclass
class Post:
    path: str
    payload: Any
    key: str = ""


@dataclass
class Inbox:
    """Both receivers; what arrives is kept in memory and, when ``folder`` is set, written there as files."""

    folder: Path | None = None
    smtp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    mails: list[Mail] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Inbox:
        if self.folder:
            (self.folder / "mail").mkdir(parents=True, exist_ok=True)
            (self.folder / "http").mkdir(parents=True, exist_ok=True)
        self._smtp = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        self._http = _Listener(("127.0.0.1", self.http_port), _http_handler(self))
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._smtp.stop()
        self._http.shutdown()
        self._http.server_close()

    def mail_url(self, address: str) -> str:
        return f"mailto://127.0.0.1:{self.smtp_port}?from=duties@huzhou.local&to={address}"

    def hook_url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.http_port}/{path.lstrip('/')}"

    def calendars_for(self, source: Path, target: Path) -> Path:
        """A copy of the calendars at ``source`` with the demo contacts (127.0.0.1:8025/8026) pointed at these
        receivers: the tests and the simulated month run the shipped programme against them."""
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        for path in target.rglob("*.yaml"):
            content = path.read_text(encoding="utf-8")
            content = content.replace("127.0.0.1:8025", f"127.0.0.1:{self.smtp_port}")
            content = content.replace("127.0.0.1:8026", f"127.0.0.1:{self.http_port}")
            path.write_text(content, encoding="utf-8")
        return target

    def keep_mail(self, mail: Mail, raw: bytes) -> None:
        with self._lock:
            self.mails.append(mail)
            if self.folder:
                name = f"{time.time_ns()}-{mail.recipients[0].split('@')[0]}.eml"
                (self.folder / "mail" / name).write_bytes(raw)

    def keep_post(self, post: Post) -> None:
        with self._lock:
            self.posts.append(post)
            if self.folder:
                path = post.path.split("?", 1)[0].strip("/")  # the query may hold a bot's token: keep it out
                name = f"{time.time_ns()}-{re.sub(r'[^A-Za-z0-9_.-]', '_', path)}.json"
                text = json.dumps(post.payload, ensure_ascii=False, indent=2)
                (self.folder / "http" / name).write_text(text, encoding="utf-8")


class _SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("reject"):  # a mailbox that does not exist, for the tests of permanent failures
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delay = re.match(r"delay(\d+)-", envelope.rcpt_tos[0]) if envelope.rcpt_tos else None
        if delay:  # a mail server that takes its time, for the tests that stop a dispatcher mid-batch
            await asyncio.sleep(int(delay.group(1)) / 1000)
        raw = bytes(envelope.content)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        key = str(message.get(IDEMPOTENCY_HEADER) or "")
        sender = str(message["from"] or "")
        parts = [part.get_content_type() for part in message.walk() if not part.is_multipart()]
        mail = Mail(list(envelope.rcpt_tos), str(message["subject"] or ""), body, key, sender, parts)
        self.inbox.keep_mail(mail, raw)
        return "250 OK"


class _Listener(ThreadingHTTPServer):
    """A real server's listen backlog: socketserver's 5 overflows when the outbox sends eight at once, and each
    dropped connection then waits a second for its retry."""

    request_queue_size = 128


def _http_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    """Answers 200 with errcode 0, except on test paths: /status/500/…, /errcode/310000/…, /slow/…, /delay/60/…"""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                payload: Any = json.loads(raw or b"null")
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            status, errcode = _behaviour(self.path)
            if status == 200 and errcode == 0:  # accepted: kept as it arrived (a slow answer came after the wait)
                inbox.keep_post(Post(self.path, payload, str(self.headers.get(IDEMPOTENCY_HEADER) or "")))
            if self.path.startswith("/slow"):
                threading.Event().wait(SLOW_SECONDS)  # answer after the sender's read timeout
            # DingTalk and WeCom answer errcode/errmsg, Feishu code/msg: give both.
            reason = "ok" if errcode == 0 else "rejected"
            body = json.dumps({"errcode": errcode, "errmsg": reason, "code": errcode, "msg": reason}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep the console quiet
            return

        def handle(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the sender gave up waiting
                super().handle()

    return Handler


SLOW_SECONDS = 2.0


def _behaviour(path: str) -> tuple[int, int]:
    parts = path.strip("/").split("/")
    if parts[0] == "status" and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1]), 0
    if parts[0] == "errcode" and len(parts) > 1 and parts[1].isdigit():
        return 200, int(parts[1])
    if parts[0] == "delay" and len(parts) > 1 and parts[1].isdigit():
        threading.Event().wait(int(parts[1]) / 1000)  # a remote that takes its time, but within the timeout
    return 200, 0


def run_forever(folder: Path, *, smtp_port: int, http_port: int) -> None:
    inbox = Inbox(folder=folder, smtp_port=smtp_port, http_port=http_port).start()
    print(f"演示收件服务：SMTP 127.0.0.1:{smtp_port}，HTTP 127.0.0.1:{http_port}，写入 {folder}/", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        inbox.stop()
