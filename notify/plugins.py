"""The product's own apprise plugins (the e-mail with an HTML alternative, the body-checking bots, the SMS example),
put in apprise's place once per process, when a URL is first read or sent.

Not at import: registering makes apprise load every one of its plugin modules (0.3 s), which every command paid,
even one that reads no URL (an idle tick, a re-plan). Anything that instantiates an apprise URL calls ``ready()``
first, so no URL is ever read by apprise's stock plugin where the product has its own.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_READY: list[bool] = []


def ready() -> None:
    """Register the product's plugins with apprise, once; cheap on every later call."""
    if _READY:
        return
    with _LOCK:
        if _READY:
            return
        import notify.sms  # noqa: F401  (the smsgw:// example registers itself when imported)
        from notify import bots, mail

        mail.register()
        bots.register()
        _READY.append(True)
