"""E-mail as an office reads it: the text exactly as written, with an HTML alternative that keeps its layout and makes
its links clickable, from the office by name.

Apprise's own e-mail plugin sends HTML only by rebuilding the plain part from the HTML, which collapses the notices'
indentation ("   整改期限：…"). This subclass keeps apprise's URL syntax (``mailto://…?from=…&to=…&name=…``), its
SMTP connection handling (``AppriseSMTPController``: SSL, STARTTLS, login) and its log lines, and builds the message
itself. ``register()`` puts it in apprise's place for mailto:// and mailtos://.

The TLS context is built once per process, not per connection: apprise's controller calls
``ssl.create_default_context()`` (loading the system's CA store, 40–50 ms) for every connection, plain SMTP included.
Two contexts, one that verifies and one that does not (``?verify=no``); neither is changed after it is built, so
threads share them safely.
"""

from __future__ import annotations

import contextlib
import html
import re
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from apprise.apprise import N_MGR
from apprise.exception import AppriseImproperlyConfigured
from apprise.logger import logger
from apprise.plugins.email import NotifyEmail
from apprise.plugins.email.smtp import SMTP_EXCEPTIONS, SMTP_SECURE_MODES, AppriseSMTPController, SMTPSecureMode

URL = re.compile(r"https?://[^\s<>\"']+")


def as_html(text: str) -> str:
    """The text as HTML: each line kept, leading spaces kept, links clickable, everything else escaped."""
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = "&nbsp;" * (len(line) - len(stripped))
        escaped = html.escape(stripped)
        linked = URL.sub(lambda found: f'<a href="{found.group(0)}">{found.group(0)}</a>', escaped)
        lines.append(indent + linked)
    body = "<br>\n".join(lines)
    style = 'font-family: "PingFang SC", "Microsoft YaHei", sans-serif; font-size: 15px; line-height: 1.6'
    return f'<!doctype html><html><body><div style="{style}">{body}</div></body></html>'


_CONTEXTS: dict[bool, ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def tls_context(verify: bool) -> ssl.SSLContext:
    """This process's TLS context for SMTP: the system's CA store and host names checked, or nothing checked."""
    with _CONTEXTS_LOCK:
        if verify not in _CONTEXTS:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _CONTEXTS[verify] = context
        return _CONTEXTS[verify]


class _Controller(AppriseSMTPController):
    """apprise's SMTP connection (SSL, STARTTLS, login, its log lines) with the process's TLS context.

    ``__enter__`` is apprise 2.0's own, except for where the context comes from; ``sendmail`` and ``__exit__`` are
    apprise's.
    """

    _socket: Any

    def __enter__(self) -> _Controller:
        if self.secure_mode not in SMTP_SECURE_MODES:
            raise AppriseImproperlyConfigured(f"Invalid SMTP secure mode: {self.secure_mode!r}")
        context = tls_context(bool(self.verify_certificate))
        try:
            logger.debug("Connecting to remote SMTP server...")
            if self.secure_mode == SMTPSecureMode.SSL:
                logger.debug("Securing connection with SSL...")
                self._socket = smtplib.SMTP_SSL(
                    self.host, self.port, None, timeout=self.socket_connect_timeout, context=context
                )
            else:
                self._socket = smtplib.SMTP(self.host, self.port, None, timeout=self.socket_connect_timeout)
            if self.secure_mode == SMTPSecureMode.STARTTLS:
                logger.debug("Securing connection with STARTTLS...")
                self._socket.starttls(context=context)
            if self.user and self.password:
                logger.debug("Applying user credentials...")
                self._socket.login(self.user, self.password)
        except SMTP_EXCEPTIONS:
            if self._socket is not None:  # close a connection that failed during STARTTLS or login
                with contextlib.suppress(*SMTP_EXCEPTIONS):
                    self._socket.quit()
                self._socket = None
            raise
        return self


class TextAndHtmlEmail(NotifyEmail):
    """apprise's e-mail with the message built here: text/plain as written, text/html beside it."""

    # apprise's attributes, typed for mypy
    targets: list[Any]
    from_addr: list[Any]
    headers: dict[str, str]
    logger: Any

    def send(self, body: str, title: str = "", notify_type: Any = None, attach: Any = None, **kwargs: Any) -> bool:  # type: ignore[override]
        if not self.targets:
            self.logger.warning("There are no Email recipients to notify")
            return False
        self.throttle()
        try:
            with _Controller(
                host=self.smtp_host,
                port=int(self.port or smtplib.SMTP_PORT),
                secure_mode=str(self.secure_mode),
                user=self.user,
                password=self.password,
                verify_certificate=self.verify_certificate,
                socket_connect_timeout=self.socket_connect_timeout,
            ) as smtp:
                return all(self._send_one(smtp, title, body, recipient) for recipient in self.targets)
        except (OSError, smtplib.SMTPException, RuntimeError, AppriseImproperlyConfigured) as exc:
            self.logger.warning(f'Connection error while submitting email to "{self.smtp_host}"')
            self.logger.debug(f"Socket Exception: {exc}")
            return False

    def _send_one(self, smtp: AppriseSMTPController, title: str, body: str, recipient: Any) -> bool:
        name, address = recipient
        message = EmailMessage()
        message["Subject"] = title
        message["From"] = formataddr((self.from_addr[0] or "", self.from_addr[1]))
        message["To"] = formataddr((name or "", address))
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=self.smtp_host or None)
        message["X-Application"] = self.app_id
        for header, value in self.headers.items():  # the idempotency key (+X-Duties-Idempotency-Key=…) among them
            message[header] = value
        message.set_content(body)
        message.add_alternative(as_html(body), subtype="html")
        if smtp.sendmail(self.from_addr[1], [address], message.as_string()):
            self.logger.info(f"Sent Email to {address}")
            return True
        self.logger.warning(f'Sending email to "{address}" failed.')
        return False


def register() -> None:
    """Use this e-mail for mailto:// and mailtos://, in this process (notify/plugins.py calls it once)."""
    N_MGR.add(TextAndHtmlEmail, schemas=("mailto", "mailtos"), force=True)
