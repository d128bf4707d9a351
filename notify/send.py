"""The one narrow adapter between a message and a channel: one apprise URL in, one recorded outcome out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import apprise


@dataclass(frozen=True)
class Outcome:
    ok: bool
    log: str


class Sender(Protocol):
    def __call__(self, url: str, title: str, body: str) -> Outcome: ...


def send_apprise(url: str, title: str, body: str) -> Outcome:
    """Send to exactly one recipient on one channel and capture apprise's log as the delivery's record."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return Outcome(False, "invalid apprise URL")
    with apprise.LogCapture(level=logging.INFO) as captured:
        # body_format TEXT: otherwise e-mail bodies are treated as HTML and the newlines collapse.
        ok = bool(notifier.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT))
    return Outcome(ok, captured.getvalue()[-4000:])
