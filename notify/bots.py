"""Chat-bot channels that read the answer's body: DingTalk, WeCom (企业微信) and Feishu (飞书) group bots.

Their clouds answer HTTP 200 even when they refuse a message and put the reason in the body (``errcode`` or
``code``); apprise's own plugins look only at the status and call that a success. These subclasses keep apprise's
URL syntax (``dingtalk://SECRET@TOKEN``, ``wecombot://KEY``, ``feishu://TOKEN?secret=…``) and replace ``send`` with
one that reads the body, signs where the bot has a secret, and accepts ``?base=`` so a test, or a proxy, can stand
in for the cloud. ``register()`` puts them in apprise's place for these schemas.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any, ClassVar

import requests
from apprise.apprise import N_MGR
from apprise.plugins.dingtalk import NotifyDingTalk
from apprise.plugins.feishu import NotifyFeishu
from apprise.plugins.wecombot import NotifyWeComBot

# Body codes that mean "too many messages, try later"; any other non-zero code is a permanent refusal.
RETRYABLE_CODES = {130101, 45009, 11232, 9499}


class _BodyChecked:
    """Post a bot's JSON and trust only the code in the answer's body."""

    service: ClassVar[str]
    code_field: ClassVar[str] = "errcode"
    default_base: ClassVar[str]

    base: str
    logger: Any
    request_timeout: Any
    verify_certificate: bool

    def __init__(self, base: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = (base or self.default_base).rstrip("/")

    def _post(self, url: str, payload: dict[str, Any], params: dict[str, str] | None = None) -> bool:
        self.throttle()  # type: ignore[attr-defined]
        try:
            answer = requests.post(
                url,
                data=json.dumps(payload, ensure_ascii=False).encode(),
                params=params,
                headers={"Content-Type": "application/json"},
                timeout=self.request_timeout,
                verify=self.verify_certificate,
            )
        except requests.RequestException as exc:
            self.logger.warning(f"A Connection error occurred sending {self.service} notification.")
            self.logger.debug(f"Socket Exception: {exc}")
            return False
        if answer.status_code != requests.codes.ok:
            self.logger.warning(f"Failed to send {self.service} notification: error={answer.status_code}.")
            return False
        try:
            body = answer.json()
            code = int(body.get(self.code_field, -1))
        except (ValueError, TypeError, AttributeError):
            body, code = {}, -1
        if code != 0:
            message = body.get("errmsg") or body.get("msg") or "no reason given"
            self.logger.warning(f"{self.service} refused the message: errcode={code} ({message}).")
            return False
        self.logger.info(f"Sent {self.service} notification.")
        return True


def _base_from(results: dict[str, Any] | None) -> dict[str, Any] | None:
    if results and results["qsd"].get("base"):
        results["base"] = results["qsd"]["base"]
    return results


LINK = re.compile(r"https?://\S+/(?:c|u)/\S+")


def button_target(body: str) -> str | None:
    """Where a message's button leads: the item's link, or the unit's page when the message lists several items."""
    links = LINK.findall(body)
    if not links:
        return None
    items = [link for link in links if "/c/" in link]
    return items[0] if len(items) == 1 else next((link for link in links if "/u/" in link), links[0])


def action_card(title: str, body: str, mobiles: list[str]) -> dict[str, Any]:
    """A DingTalk message a clerk can act on from the phone: an ActionCard with the message and a button to the
    item (or the unit's page), @-mentioning the unit's named contacts (numbers in the contact URL). Without a link,
    plain text. A mention only notifies when the number appears in the text too."""
    mentions = " ".join(f"@{mobile}" for mobile in mobiles)
    target = button_target(body)
    if target is None:
        text = f"{title}\n{body}" if title else body
        return {"msgtype": "text", "text": {"content": f"{text}\n{mentions}".strip()}, "at": {"atMobiles": mobiles}}
    lines = [*f"### {title}\n{body}".splitlines(), mentions]
    markdown = "  \n".join(line for line in lines if line)  # markdown keeps a line break only as two spaces and \n
    card = {"title": title or body[:30], "text": markdown, "singleTitle": "打开办理", "singleURL": target}
    return {"msgtype": "actionCard", "actionCard": card, "at": {"atMobiles": mobiles, "isAtAll": False}}


def wecom_message(title: str, body: str, mobiles: list[str]) -> dict[str, Any]:
    """WeCom: a text message that @-mentions the named mobiles (markdown cannot), else markdown with a link line to
    the item, which WeCom shows as a tappable link."""
    text = f"{title}\n{body}" if title else body
    target = button_target(body)
    if mobiles or target is None:
        return {"msgtype": "text", "text": {"content": text, "mentioned_mobile_list": mobiles}}
    return {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n{body}\n[打开办理]({target})"}}


def feishu_card(title: str, body: str) -> dict[str, Any]:
    """Feishu: an interactive card with the message and a button to the item, or plain text without a link."""
    target = button_target(body)
    if target is None:
        return {"msg_type": "text", "content": {"text": f"{title}\n{body}" if title else body}}
    button = {"tag": "button", "text": {"tag": "plain_text", "content": "打开办理"}, "url": target, "type": "primary"}
    elements = [{"tag": "div", "text": {"tag": "plain_text", "content": body}}, {"tag": "action", "actions": [button]}]
    header = {"title": {"tag": "plain_text", "content": title or body[:30]}}
    return {"msg_type": "interactive", "card": {"header": header, "elements": elements}}


class DingTalkBot(_BodyChecked, NotifyDingTalk):
    service = "DingTalk"
    default_base = "https://oapi.dingtalk.com"

    def send(self, body: str, title: str = "", notify_type: Any = None, **kwargs: Any) -> bool:  # type: ignore[override]
        payload = action_card(title, body, [str(mobile) for mobile in self.targets])
        params = {"access_token": self.token}
        if self.secret:
            stamp = str(round(time.time() * 1000))
            digest = hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256).digest()
            params.update(timestamp=stamp, sign=base64.b64encode(digest).decode())
        return self._post(f"{self.base}/robot/send", payload, params)

    @staticmethod
    def parse_url(url: str) -> dict[str, Any] | None:  # type: ignore[override]
        return _base_from(NotifyDingTalk.parse_url(url))


class WeComBot(_BodyChecked, NotifyWeComBot):
    service = "WeCom"
    default_base = "https://qyapi.weixin.qq.com"

    def __init__(self, mobiles: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mobiles = [m.strip() for m in (mobiles or "").split(",") if m.strip()]

    def send(self, body: str, title: str = "", notify_type: Any = None, **kwargs: Any) -> bool:
        return self._post(
            f"{self.base}/cgi-bin/webhook/send", wecom_message(title, body, self.mobiles), {"key": self.key}
        )

    @staticmethod
    def parse_url(url: str) -> dict[str, Any] | None:  # type: ignore[override]
        results = _base_from(NotifyWeComBot.parse_url(url))
        if results and results["qsd"].get("mobiles"):  # wecombot://KEY?mobiles=13800000000,13900000000
            results["mobiles"] = results["qsd"]["mobiles"]
        return results


class FeishuBot(_BodyChecked, NotifyFeishu):
    service = "Feishu"
    code_field = "code"
    default_base = "https://open.feishu.cn"

    def __init__(self, secret: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secret = secret

    def send(self, body: str, title: str = "", notify_type: Any = None, **kwargs: Any) -> bool:
        payload = feishu_card(title, body)
        if self.secret:  # 飞书签名校验: HMAC-SHA256 keyed with "timestamp\nsecret" over an empty message
            stamp = str(int(time.time()))
            key = f"{stamp}\n{self.secret}".encode()
            payload.update(timestamp=stamp, sign=base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode())
        return self._post(f"{self.base}/open-apis/bot/v2/hook/{self.token}", payload)

    @staticmethod
    def parse_url(url: str) -> dict[str, Any] | None:  # type: ignore[override]
        results = _base_from(NotifyFeishu.parse_url(url))
        if results and results["qsd"].get("secret"):
            results["secret"] = results["qsd"]["secret"]
        return results


def register() -> None:
    """Use the body-checking bots for these schemas, in this process (notify/plugins.py calls it once)."""
    N_MGR.add(DingTalkBot, schemas="dingtalk", force=True)
    N_MGR.add(WeComBot, schemas="wecombot", force=True)
    N_MGR.add(FeishuBot, schemas="feishu", force=True)
