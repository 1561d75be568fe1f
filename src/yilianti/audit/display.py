"""An audit entry as a person reads it: the action, the object and the detail with labelled fields.

The detail is stored as JSON (`{"from": "received", "to": "accepted"}`, `{"bed_note": {"from": null, "to": "…"}}`,
`{"scope": "alliance"}`); shown, each key gets its label (`audit.field.*`), a change reads before → after, a code
its code-table label (`<domain>.<field>`, the domain's statuses for from/to), and a long list of ids its count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from yilianti.kit.i18n import catalogue, find_label, label, translate
from yilianti.models.audit import AuditEvent

# the domain whose code tables label an object's statuses and codes
DOMAIN_OF = {"critical_transfer": "transfer", "diagnostic_order": "diagnostics", "booking": "booking",
             "match_candidate": "empi"}
CODE = re.compile(r"[a-z][a-z0-9_]*")
# fields whose values are names people chose, never codes (a username "admin" is not a code to label)
FREE_TEXT = frozenset({"username", "display_name", "name", "person", "subject", "source", "note", "reason"})


@dataclass
class Line:
    field: str
    before: str | None  # None: not a change, `after` is the value
    after: str


@dataclass
class Shown:
    action: str
    resource: str
    lines: list[Line] = field(default_factory=list)


def _value(domain: str, key: str, value: Any, locale: str) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return translate("是" if value else "否", locale)
    if isinstance(value, list):
        if len(value) > 5:
            return translate("{n} 项", locale, n=len(value))
        return "、".join(_value(domain, key, v, locale) for v in value)
    if isinstance(value, dict):
        return "；".join(f"{label('audit.field', k, locale)}: {_value(domain, k, v, locale)}" for k, v in value.items())
    text = str(value)
    if isinstance(value, str) and CODE.fullmatch(text) and key not in FREE_TEXT:
        kinds = ([f"{domain}.status"] if key in ("status", "from", "to")
                 else [f"{domain}.{key}", f"{domain}.milestone", key, "audit.code", "access_basis"])
        for kind in kinds:
            found = find_label(kind, text, locale)
            if found is not None:
                return found
        return label(kinds[0], text, locale)
    return text


def action_label(action: str, locale: str) -> str:
    """`referral.accepted` reads 转诊 · 已同意; a plain action (`read`) its own label."""
    if "." in action:
        domain, step = action.split(".", 1)
        if f"audit.action.{action}" not in _known(locale):
            return f"{label('audit.resource', domain, locale)} · {label(domain + '.status', step, locale)}"
    return label("audit.action", action, locale)


def _known(locale: str) -> set[str]:

    return set(catalogue("zh")) | set(catalogue(locale))


def show(event: AuditEvent, locale: str) -> Shown:
    domain = event.action.split(".", 1)[0] if "." in event.action else DOMAIN_OF.get(event.resource_type,
                                                                                       event.resource_type)
    shown = Shown(action_label(event.action, locale), label("audit.resource", event.resource_type, locale))
    detail = event.detail if isinstance(event.detail, dict) else {}
    if "from" in detail and "to" in detail:
        shown.lines.append(Line(label("audit.field", "status", locale), _value(domain, "status", detail["from"], locale),
                                _value(domain, "status", detail["to"], locale)))
    for key, value in detail.items():
        if key in ("from", "to"):
            continue
        name = label("audit.field", key, locale)
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            shown.lines.append(Line(name, _value(domain, key, value["from"], locale),
                                    _value(domain, key, value["to"], locale)))
        else:
            shown.lines.append(Line(name, None, _value(domain, key, value, locale)))
    return shown
