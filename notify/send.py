"""The one narrow adapter between a message and a channel: one apprise URL in, one classified outcome out.

Apprise says only True or False; its log says why. ``failure_mode`` reads the log into one of four modes, and the
outcome follows from the mode and the channel:

- ``never_sent``: the connection was refused, timed out while connecting, or failed its TLS handshake, or the plugin
  gave up before any I/O. Nothing reached the receiver: ``retry``.
- ``maybe_sent``: the request left and no complete answer came back (read timeout, the remote end closed or reset
  the connection, a truncated answer, an SMTP server that hung up). The receiver may have posted it. Where the
  receiver dedupes by our idempotency key (webhooks) that is safe to ``retry``; elsewhere it is ``unknown``, which is
  never resent automatically: a chat bot or a mailbox would get it twice.
- ``refused``: the receiver answered no for good (HTTP 4xx, a bot's errcode, SMTP 5xx): ``failed``.
- ``busy``: the receiver answered "not now" (HTTP 5xx or 429, a bot's rate-limit code, SMTP 4xx): ``retry``.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import apprise

from notify import plugins
from notify.bots import RETRYABLE_CODES

# Channels whose receivers see our idempotency key, as an HTTP header (webhooks) or a mail header.
KEYED_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls"}
HEADER_SCHEMES = KEYED_SCHEMES | {"mailto", "mailtos"}
IDEMPOTENCY_HEADER = "X-Duties-Idempotency-Key"


@dataclass(frozen=True)
class Outcome:
    status: str  # sent, retry, failed or unknown
    log: str

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class Sender(Protocol):
    def __call__(self, url: str, title: str, body: str, *, key: str = "") -> Outcome: ...


def send_apprise(url: str, title: str, body: str, *, key: str = "") -> Outcome:
    """Send to exactly one recipient on one channel and capture apprise's log as the delivery's record.

    The plugin for the URL is called directly: with one URL per delivery, apprise's fan-out (tag matching, priority
    groups, a hop through its thread pool) has nothing to do and cost a sixth of the sending time.
    """
    plugins.ready()
    plugin = apprise.Apprise.instantiate(with_key(url, key))
    if plugin is None:
        return Outcome("failed", "invalid apprise URL")
    with _RECORDER.recording() as lines:
        # body_format TEXT: otherwise e-mail bodies are treated as HTML and the newlines collapse.
        ok = bool(plugin.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT))
    log = "\n".join(lines)
    return Outcome("sent" if ok else classify_failure(log, scheme(url)), log[-4000:])


class _Recorder(logging.Filter):
    """Keeps, per call, apprise's INFO-and-above lines and the low-level exception behind a failure.

    Installed once instead of apprise's LogCapture per message: that formats every DEBUG line apprise writes, which
    cost a third of the sending time. The "Socket Exception" DEBUG line is kept because only it tells a read timeout
    (the message may have arrived) from a refused connection (it did not). A context variable finds the right call's
    list: each sending thread has its own, so calls in several threads at once each keep only their own lines.

    A filter on the apprise logger rather than a handler: it sees each record first, keeps what the delivery's log
    needs, and lets on only what the logger would have let on without our DEBUG level, so a worker's console is not
    flooded with apprise's DEBUG lines while we record them. The logger's level is shared by all threads: the first
    call to start recording lowers it to DEBUG and the last one to finish puts it back, so one thread finishing never
    silences another's DEBUG lines, nor leaves the level at DEBUG.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lines: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("duties_send_log", default=None)
        self.passing = logging.WARNING
        self.formatter = logging.Formatter("%(asctime)s - %(levelname)s - %(message)s")
        self._lock = threading.Lock()
        self._recording = 0  # calls recording now, in all threads
        self._previous = logging.NOTSET  # the logger's own level before the first of them

    def filter(self, record: logging.LogRecord) -> bool:
        lines = self.lines.get()
        if lines is not None and (record.levelno >= logging.INFO or "Exception" in str(record.msg)):
            lines.append(self.formatter.format(record))
        return record.levelno >= self.passing

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        lines: list[str] = []
        token = self.lines.set(lines)
        self._enter()
        try:
            yield lines
        finally:
            self._leave()
            self.lines.reset(token)

    def _enter(self) -> None:
        with self._lock:
            if self._recording == 0:
                logger = logging.getLogger("apprise")
                self._previous = logger.level
                self.passing = logger.getEffectiveLevel()
                logger.setLevel(logging.DEBUG)
            self._recording += 1

    def _leave(self) -> None:
        with self._lock:
            self._recording -= 1
            if self._recording == 0:
                logging.getLogger("apprise").setLevel(self._previous)


_RECORDER = _Recorder()
logging.getLogger("apprise").addFilter(_RECORDER)


def with_key(url: str, key: str) -> str:
    """The URL with the idempotency key as a header, where the channel carries headers (apprise's ``+Name=``)."""
    if not key or scheme(url) not in HEADER_SCHEMES:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}+{IDEMPOTENCY_HEADER}={quote(key)}"


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


# A Python exception's text, as apprise and our plugins log it ("Socket Exception: …"), read by what it proves.
# Checked in this order: a failed connection proves nothing left, whatever else the text says.
_NEVER_SENT = (
    "Connection refused",
    "NewConnectionError",
    "Failed to establish a new connection",
    "ConnectTimeout",
    "connect timeout=",
    "NameResolutionError",
    "Name or service not known",
    "No address associated",
    "SSLError",  # a TLS handshake failed: it comes before any byte of the request
    "CERTIFICATE_VERIFY_FAILED",
    "Network is unreachable",
    "No route to host",
)


def failure_mode(log: str) -> str:
    """never_sent, maybe_sent, refused or busy: what a failed send's log proves about the receiver."""
    coded = _answered(log)
    if coded is not None:
        return coded
    exception = re.search(r"Socket Exception: (.*)", log)
    if exception is None:
        return "never_sent"  # the plugin gave up before any I/O (no recipient, a bad URL)
    text = exception.group(1)
    if any(marker in text for marker in _NEVER_SENT):
        return "never_sent"
    # Read timeouts, "Remote end closed connection without response", resets, broken pipes, truncated answers,
    # an SMTP server that hung up, and anything not recognised: the request may have arrived.
    return "maybe_sent"


def _answered(log: str) -> str | None:
    """The mode when the receiver answered with a code: a bot's errcode, an SMTP reply or an HTTP status."""
    bot = re.search(r"errcode=(-?\d+)", log)  # a chat bot's cloud refused it in the body of an HTTP 200
    if bot:
        return "busy" if int(bot.group(1)) in RETRYABLE_CODES else "refused"
    smtp = re.search(r"\((\d{3}), b'", log)  # an SMTP refusal: {'addr': (550, b'5.1.1 ...')}
    if smtp:
        return "refused" if int(smtp.group(1)) >= 500 else "busy"  # 5xx is permanent in SMTP, 4xx temporary
    http = re.search(r"error=(\d{3})", log)
    if http:
        code = int(http.group(1))
        return "busy" if code >= 500 or code == 429 else "refused"
    return None


def classify_failure(log: str, channel: str) -> str:
    """What a failed send means for the outbox: retry, failed or unknown (see the module's docstring)."""
    mode = failure_mode(log)
    if mode == "refused":
        return "failed"
    if mode == "maybe_sent" and channel not in KEYED_SCHEMES:
        return "unknown"
    return "retry"
