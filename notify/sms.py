"""SMS: the plug-in point, with one worked example.

Text messages go through whatever gateway an office contracts (运营商短信平台, a cloud SMS service). Each is one
apprise custom notification: a function registered for a URL schema with ``apprise.decorators.notify``. This
example, ``smsgw://HOST[:PORT]/PATH?to=PHONE[,PHONE]&sign=签名``, posts JSON to an HTTP gateway and trusts only the
``code`` in the answer's body, like the chat bots. To add a real provider, copy this function, change the payload
and the answer check, and register it under a new schema; the outbox, retries and failover work unchanged.

The signature (短信签名) is the programme's data, not this module's: when the calendars are loaded, a contact
without ``sign=`` gets ``programme.sms_signature`` (calendars/loader.py). A message with no signature at all is
refused here, as the operators would refuse it.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from apprise.decorators import notify
from apprise.logger import logger

SMS_LIMIT = 500  # characters a long SMS may carry; the link must survive, so the title goes first and briefly


@notify(on="smsgw", name="短信网关（示例）")
def send_sms(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
    phones = [p for p in str(meta.get("qsd", {}).get("to", "")).split(",") if p.strip()]
    if not phones:
        logger.warning("SMS gateway: no phone number (to=) in the URL.")
        return False
    sign = str(meta.get("qsd", {}).get("sign", "")).strip()
    if not sign:
        logger.warning("SMS gateway: no signature (sign=) in the URL, and the calendars' programme gives none.")
        return False
    port = f":{meta['port']}" if meta.get("port") else ""
    url = f"http://{meta['host']}{port}{meta.get('fullpath') or '/'}"
    payload = {"phones": phones, "sign": sign, "content": f"【{sign}】{title}\n{body}"[:SMS_LIMIT]}
    try:
        answer = requests.post(
            url,
            data=json.dumps(payload, ensure_ascii=False).encode(),
            timeout=(4, 8),
            headers={"Content-Type": "application/json"},
        )
    except requests.RequestException as exc:
        logger.warning("A Connection error occurred sending SMS notification.")
        logger.debug(f"Socket Exception: {exc}")
        return False
    if answer.status_code != requests.codes.ok:
        logger.warning(f"Failed to send SMS notification: error={answer.status_code}.")
        return False
    try:
        code = int(answer.json().get("code", -1))
    except (ValueError, TypeError, AttributeError):
        code = -1
    if code != 0:
        logger.warning(f"SMS gateway refused the message: errcode={code}.")
        return False
    logger.info(f"Sent SMS notification to {len(phones)} phone(s).")
    return True
