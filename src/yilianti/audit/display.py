"""An audit entry as a person reads it: the action, the object and the detail with labelled fields.

The detail is stored as JSON (`{"from": "received", "to": "accepted"}`, `{"bed_note": {"from": null, "to": "…"}}`,
`{"scope": "alliance"}`); shown, each key gets its label (`audit.field.*`), a change reads before → after, a code
its code-table label (`<domain>.<field>`, the domain's statuses for from/to), and a long list of ids its count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from yilianti.kit import clock
from yilianti.kit.i18n import catalogue, find_label, label, translate
from yilianti.models.audit import AuditEvent

# the domain whose code tables label an object's statuses and codes
DOMAIN_OF = {"critical_transfer": "transfer", "diagnostic_order": "diagnostics", "booking": "booking",
             "match_candidate": "empi"}
CODE = re.compile(r"[a-z][a-z0-9_]*")
# fields whose values are names people chose, never codes (a username "admin" is not a code to label)
FREE_TEXT = frozenset({"username", "display_name", "name", "person", "subject", "source", "note", "reason"})


# an ISO timestamp in a detail (`grant.expires_at.isoformat()`), shown as local minutes
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?")


REF_KEYS = {"registered_at": "institution"}  # detail keys naming an id without saying `…_id`


def ref_kind(key: str) -> str | None:
    """Which names a detail key's ids are: `institution_id`, `to_institution_id` (and REF_KEYS) → institution,
    `user_id`, `to_user_id` → user, `department_id` → department, `alliance_id` → alliance."""
    if key in REF_KEYS:
        return REF_KEYS[key]
    for kind in ("institution", "user", "department", "alliance"):
        if key == f"{kind}_id" or key.endswith(f"_{kind}_id"):
            return kind
    return None


def refs_wanted(events: Iterable[AuditEvent]) -> dict[str, set[int]]:
    """The ids the events' details name, by kind (ref_kind), for the page to look their names up in one go."""
    wanted: dict[str, set[int]] = {}
    for e in events:
        detail = e.detail if isinstance(e.detail, dict) else {}
        for key, value in detail.items():
            kind = ref_kind(key)
            if kind is None:
                continue
            values = [value.get("from"), value.get("to")] if isinstance(value, dict) else [value]
            wanted.setdefault(kind, set()).update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    return wanted


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


Refs = dict[str, dict[int, str]]  # kind (ref_kind) → id → name


def _value(domain: str, key: str, value: Any, locale: str, refs: Refs | None = None) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return translate("是" if value else "否", locale)
    if isinstance(value, list):
        if len(value) > 5:
            return translate("{n} 项", locale, n=len(value))
        return "、".join(_value(domain, key, v, locale, refs) for v in value)
    if isinstance(value, dict):
        return "；".join(f"{label('audit.field', k, locale)}: {_value(domain, k, v, locale, refs)}"
                        for k, v in value.items())
    kind = ref_kind(key)
    if kind and isinstance(value, int) and refs and value in refs.get(kind, {}):
        return refs[kind][value]
    text = str(value)
    if isinstance(value, str) and STAMP.fullmatch(text):
        try:
            return clock.fmt_local(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return text
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


def show(event: AuditEvent, locale: str, refs: Refs | None = None) -> Shown:
    """The event as read: its action and object labelled, each detail a line; ids of institutions, users,
    departments and alliances by name when `refs` (looked up for refs_wanted) has them, timestamps local."""
    domain = event.action.split(".", 1)[0] if "." in event.action else DOMAIN_OF.get(event.resource_type,
                                                                                       event.resource_type)
    shown = Shown(action_label(event.action, locale), label("audit.resource", event.resource_type, locale))
    detail = event.detail if isinstance(event.detail, dict) else {}
    if "from" in detail and "to" in detail:
        shown.lines.append(Line(label("audit.field", "status", locale), _value(domain, "status", detail["from"], locale, refs),
                                _value(domain, "status", detail["to"], locale, refs)))
    for key, value in detail.items():
        if key in ("from", "to"):
            continue
        name = label("audit.field", key, locale)
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            shown.lines.append(Line(name, _value(domain, key, value["from"], locale, refs),
                                    _value(domain, key, value["to"], locale, refs)))
        else:
            shown.lines.append(Line(name, None, _value(domain, key, value, locale, refs)))
    return shown
