"""Every page of the demo, for one account of each role, in Chinese and in English: no code of a code table shown
as it is (`pediatric_respiratory`, `final`, `booking`), no message missing from the English catalogues, no coded
value without a label (kit.i18n.MISSING_LABELS), no server error. Pages are found by following links from the
workbench (tests/labelcheck.py: one page per URL shape)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from tests import builders as b
from tests.labelcheck import (
    CODE_WORD,
    code_values,
    crawl,
    raw_codes,
    raw_in_english,
    read,
    record_english,
    untranslated,
)
from yilianti.demo import loader
from yilianti.kit import i18n

# one account per role, and the grassroots doctor and nurse whose pages the phone layout is for
ACCOUNTS = ("admin", "tj-alliance-admin", "tj-lead-admin", "tj-lead-doctor", "tj-lead-coordinator", "tj-lead-reader",
            "tj-auditor", "tj-community-doctor", "tj-community-nurse", "qukou-doctor")


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_every_page_shows_labels_not_codes(db: Session, client, monkeypatch, locale: str) -> None:  # type: ignore[no-untyped-def]
    codes = code_values()
    asked = record_english(monkeypatch)
    problems: list[str] = []
    pages = 0
    seen: set[str] = set()  # a page shape already read for one role is not read again for the next
    for username in ACCOUNTS:
        client.cookies.clear()
        b.login(client, username, loader.DEMO_PASSWORD)
        client.cookies.set("lang", locale)

        def get(path: str) -> tuple[int, str]:
            r = client.get(path)
            return r.status_code, r.text if "html" in r.headers.get("content-type", "") else ""

        for path, status, html in crawl(get, ["/", "/audit", "/notifications"], limit=150, seen=seen):
            pages += 1
            if status >= 500:
                problems.append(f"{username} {path}: {status}")
                continue
            texts = read(html)[0]
            shown = raw_codes(texts, codes) if locale == "zh" else raw_in_english(texts, codes)
            if shown:
                problems.append(f"{username} {path}: raw codes {sorted(shown)}")
    unlabelled = sorted(k for k in i18n.MISSING_LABELS if CODE_WORD.fullmatch(k.rsplit(".", 1)[-1]))
    missing = sorted(untranslated(asked))
    assert pages > 100
    assert not problems, "\n".join(problems)
    assert not unlabelled, f"coded values without a label: {unlabelled}"
    assert not missing, f"{len(missing)} messages missing from locale/en/*.json: {missing[:60]}"


def test_a_page_reached_after_a_change_says_what_was_done(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "tj-lead-doctor", loader.DEMO_PASSWORD)
    page = client.get("/diagnostics/critical?done=ack").text
    assert re.search(r'class="alert ok">危急值已确认', page)
    client.cookies.set("lang", "en")
    assert "Critical value acknowledged" in client.get("/diagnostics/critical?done=ack").text
    assert 'class="alert ok"' not in client.get("/diagnostics/critical?done=nonsense").text
