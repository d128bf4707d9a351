"""Words for the codes the ledger keeps, so no page or listing shows ``level:1:repeat:1`` or ``mailto`` to a manager."""

from __future__ import annotations

import re

from store.models import DELIVERY_STATES, LEVEL_NAMES

CHANNELS = {
    "mailto": "邮件",
    "mailtos": "邮件",
    "dingtalk": "钉钉群机器人",
    "wecombot": "企业微信群机器人",
    "feishu": "飞书群机器人",
    "smsgw": "短信",
    "json": "Webhook",
    "jsons": "Webhook",
    "form": "Webhook",
    "forms": "Webhook",
    "xml": "Webhook",
    "xmls": "Webhook",
}
DECISIONS = {"extend": "延期", "park": "挂账", "reopen": "返工", "waive": "免除", "verify": "核查不通过"}


def channel_label(channel: str) -> str:
    return CHANNELS.get(channel, channel)


def stage_label(stage: str) -> str:
    """remind:3d@20260227 → 到期前 3 天提醒; level:2:repeat:1 → 督办通知（第 2 次送达）; and so on."""
    if found := re.fullmatch(r"remind:(-?\d+)d(@\d{8})?", stage):
        days = int(found.group(1))
        return "到期当天提醒" if days <= 0 else f"到期前 {days} 天提醒"
    if found := re.fullmatch(r"level:(\d)(?::repeat:(\d+))?", stage):
        repeat = f"（第 {int(found.group(2)) + 1} 次送达）" if found.group(2) else ""
        level = int(found.group(1))
        return f"{LEVEL_NAMES[level] if 1 <= level <= 3 else '升级'}通知{repeat}"
    if found := re.fullmatch(r"decision:(\w+)@\d+", stage):
        return f"事项变更（{DECISIONS.get(found.group(1), found.group(1))}）"
    prefixes = {
        "digest": "提醒汇总",
        "notices": "升级通知汇总",
        "cc": "升级通知抄送",
        "moved": "变更通知",
        "finding": "整改通知",
    }
    return prefixes.get(stage.split(":", 1)[0], stage)


def actor_label(actor: str, units: dict[str, str]) -> str:
    """Who acted, as a person reads it: user:boss → 管理员 boss, unit:wuxing-msb → the unit's name, system → 系统.
    ``units`` may also name accounts that are not managers' ("user:li" → "巡查员 li", web.common.account_names)."""
    if actor in units:
        return units[actor]
    kind, _, name = actor.partition(":")
    if kind == "unit":
        return units.get(name, name)
    return {"user": f"管理员 {name}", "api": f"接口 {name}", "system": "系统", "cli": "命令行"}.get(kind, actor)


def detail_value(key: str, value: object) -> object:
    """An audit detail's value in words where it is a code: a level, a stage, a delivery state, yes or no."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if key == "level" and isinstance(value, int):
        return "未升级" if value == 0 else LEVEL_NAMES.get(value, value)
    if key == "stage" and isinstance(value, str):
        return stage_label(value)
    if key == "previous" and isinstance(value, str):
        return DELIVERY_STATES.get(value, value)
    return value
