"""Chinese is the source language; English comes from catalogues in locale/en/*.json.

Every domain may add its own catalogue file (locale/en/<domain>.json), so that no two
pieces of work edit the same file. Missing entries fall back to the Chinese text.
`core.json` (navigation, shared words) is merged last, so a domain catalogue that gives
a shared word another sense (患者 "Patient" on a form vs "Patients" in the menu) does not
change the menu.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

LOCALES = ("zh", "en")
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


@lru_cache
def catalogue(locale: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    folder = LOCALE_DIR / locale
    if folder.is_dir():
        for path in sorted(folder.glob("*.json"), key=lambda p: (p.stem == "core", p.stem)):
            merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def translate(text: str, locale: str, **params: object) -> str:
    text = catalogue(locale).get(text, text)
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


MISSING_LABELS: set[str] = set()
_TABLES: dict[str, dict[str, str]] = {}


def code_table(kind: str, labels: Mapping[Any, str]) -> Mapping[Any, str]:
    """Declares a domain's Chinese labels of one code table (`referral.status`, `diagnostics.priority`) to
    `label`; returns them unchanged, so a states module writes `STATUS_LABELS = code_table("…", {…})`."""
    _TABLES[kind] = {str(getattr(k, "value", k)): v for k, v in labels.items()}
    return labels


def codes(kind: str) -> list[str]:
    """The codes of one code table: a domain's declared table, or the `kind.*` keys of the Chinese catalogue."""
    if kind in _TABLES:
        return list(_TABLES[kind])
    prefix = kind + "."
    return sorted(k[len(prefix):] for k in catalogue("zh") if k.startswith(prefix) and "." not in k[len(prefix):])  # `kind.code` looked up with no label anywhere (the all-pages test reads it)


def find_label(kind: str, code: object, locale: str) -> str | None:
    """The label of a coded value (see `label`), or None when no catalogue or code table has one."""
    value = str(getattr(code, "value", code))
    key = f"{kind}.{value}"
    entries = catalogue(locale)
    if key in entries:
        return entries[key]
    source = catalogue("zh")
    chinese = source.get(key) or _TABLES.get(kind, {}).get(value) or source.get(value)
    if chinese:
        return entries.get(chinese, entries.get(value, chinese)) if locale != "zh" else chinese
    if locale != "zh" and value in entries:
        return entries[value]
    return None


def label(kind: str, code: object, locale: str) -> str:
    """What a person reads for a coded value: `<kind>.<code>` in the locale's catalogue.

    Chinese is the source: without an entry of its own, English translates the Chinese label, and a code
    with no `kind.` entry falls back to a bare one (the workflows' statuses: "accepted"). A code with no
    label at all is shown as it is and remembered in MISSING_LABELS. Enums give their value.
    """
    if code is None or code == "":
        return ""
    found = find_label(kind, code, locale)
    if found is None:
        MISSING_LABELS.add(f"{kind}.{getattr(code, 'value', code)}")
        return str(getattr(code, "value", code))
    return found


def pick_locale(cookie: str | None, accept_language: str | None, default: str = "zh") -> str:
    if cookie in LOCALES:
        return cookie
    if accept_language:
        for part in accept_language.split(","):
            tag = part.split(";")[0].strip().lower()
            if tag.startswith("zh"):
                return "zh"
            if tag.startswith("en"):
                return "en"
    return default
