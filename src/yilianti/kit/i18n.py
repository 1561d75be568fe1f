"""Chinese is the source language; English comes from catalogues in locale/en/*.json.

Every domain may add its own catalogue file (locale/en/<domain>.json), so that no two
pieces of work edit the same file. Missing entries fall back to the Chinese text.
`core.json` (navigation, shared words) is merged last, so a domain catalogue that gives
a shared word another sense (患者 "Patient" on a form vs "Patients" in the menu) does not
change the menu.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

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
