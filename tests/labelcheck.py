"""Finds raw codes and messages missing from the catalogues on rendered pages (tests/demo/test_all_pages_labels.py).

`crawl` follows the links of a signed-in user's pages (GET only, one page per URL shape: /referrals/12 and
/referrals/13 count once) and hands each page to `raw_codes`, which reads the text a person sees (not tags,
attributes, scripts or form values) and reports every word that is a code of a code table: the values of the
models' enums and the workflows' statuses, and every key of the Chinese code catalogues (locale/zh/*.json).
"""

from __future__ import annotations

import enum
import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from yilianti.kit.i18n import LOCALE_DIR

# words that are codes somewhere but also ordinary words people read in a Chinese page (none so far)
NOT_CODES: frozenset[str] = frozenset()


def code_values() -> frozenset[str]:
    """Every value of a code table the platform shows somewhere."""
    import yilianti.models as models
    from yilianti.consultation import states as c_states
    from yilianti.diagnostics import states as d_states
    from yilianti.referral import states as r_states
    from yilianti.transfer import states as t_states

    codes: set[str] = set()
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, enum.Enum) and obj.__module__ == module.__name__:
                codes.update(str(e.value) for e in obj)
    for module in (c_states, d_states, r_states, t_states):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, enum.Enum):
                codes.update(str(e.value) for e in obj)
    for path in (LOCALE_DIR / "zh").glob("*.json"):
        for key in json.loads(path.read_text(encoding="utf-8")):
            parts = key.split(".")
            if len(parts) <= 2:  # "accepted", "specialty.pediatric_respiratory"
                codes.add(parts[-1])
    return frozenset(c for c in codes if re.fullmatch(r"[a-z][a-z0-9_]*", c) and len(c) > 2) - NOT_CODES


class _Text(HTMLParser):
    SKIP = {"script", "style", "textarea", "option", "code", "pre", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.depth += 1
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth and data.strip():
            self.parts.append(data.strip())


def read(html: str) -> tuple[list[str], list[str]]:
    p = _Text()
    p.feed(html)
    return p.parts, p.links


WORD = re.compile(r"[A-Za-z0-9_@./:\-]+")


def raw_codes(texts: Iterable[str], codes: frozenset[str]) -> set[str]:
    """The codes shown as they are: a whole word (user names such as `tj-lead-doctor` are one word)."""
    found = set()
    for text in texts:
        for word in WORD.findall(text):
            if word.strip(".:") in codes:
                found.add(word.strip(".:"))
    return found


SKIP_PATHS = re.compile(r"^/(logout|lang/|static/|api/|switch-institution)|/(export|download|print|attachments)(/|$|\?)"
                        r"|\.(xlsx|csv|pdf|dcm|png|jpg)(\?|$)")


def shape(path: str) -> str:
    """/referrals/12?tab=in → /referrals/N?tab — one page per URL shape."""
    parts = urlsplit(path)
    query = "&".join(sorted(q.split("=")[0] for q in parts.query.split("&") if q))
    return re.sub(r"/\d+", "/N", parts.path) + ("?" + query if query else "")


def crawl(get: Callable[[str], tuple[int, str]], start: Iterable[str], limit: int = 400,
          seen: set[str] | None = None) -> Iterable[tuple[str, int, str]]:
    """(path, status, html) of every page reachable by links from `start`, one per URL shape (`seen`: shapes
    already visited, by another user; the start pages are visited again)."""
    seen = set() if seen is None else seen
    for path in start:
        seen.discard(shape(path))
    queue = list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if shape(path) in seen:
            continue
        seen.add(shape(path))
        status, html = get(path)
        yield path, status, html
        if status != 200:
            continue
        for href in read(html)[1]:
            url = urlsplit(urljoin("http://x" + path, href))
            if url.netloc != "x" or not url.path.startswith("/"):
                continue
            nxt = url.path + ("?" + url.query if url.query else "")
            if not SKIP_PATHS.search(nxt) and shape(nxt) not in seen:
                queue.append(nxt)


CODE_WORD = re.compile(r"[a-z][a-z0-9_]*")
CJK = re.compile(r"[\u4e00-\u9fff]")


def untranslated(missing: Iterable[str]) -> set[str]:
    """Chinese messages the English catalogue lacks (what `_` was asked for and could not find)."""
    return {m for m in missing if CJK.search(m)}


def raw_in_english(texts: Iterable[str], codes: frozenset[str]) -> set[str]:
    """In English a code is also an English word ("final", "open"): raw only as a whole text node."""
    return {t for t in texts if t in codes}


def record_english(monkeypatch: Any) -> set[str]:
    """From now on, the texts an English page asks the catalogue for and it lacks go into the returned set (and
    `i18n.MISSING_LABELS` starts empty): check it with `untranslated` after reading the pages."""
    from yilianti.kit import i18n
    from yilianti.web import render

    asked: set[str] = set()
    real = render.translate

    def recording(text: str, loc: str, **params: object) -> str:
        if loc == "en" and text not in i18n.catalogue("en"):
            asked.add(text)
        return real(text, loc, **params)

    monkeypatch.setattr(render, "translate", recording)
    i18n.MISSING_LABELS.clear()
    return asked
