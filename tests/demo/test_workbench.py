"""The workbench on the demo: for every demo account, every count equals the rows behind its link.

A count is only useful if the list it opens shows exactly those rows; the test reads the count from the
workbench page as a user sees it, follows the link, and reads the list's total (`data-total` on the
element the link names) — for every account of the demo and every count on its workbench.
"""

from __future__ import annotations

import re
from html import unescape
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.demo import loader

COUNT = re.compile(r'<a href="([^"]+)" id="(wb-[\w-]+)" class="wb-count[^"]*" data-count="(\d+)" data-target="([\w-]+)"')


def _total(html: str, target: str) -> int:
    """The list's total: `data-total` of the element with id `target`; no such element = an empty list."""
    m = re.search(rf'id="{target}"[^>]*data-total="(\d*)"', html)
    return int(m.group(1) or 0) if m else 0


@pytest.mark.parametrize("account", loader.demo_accounts(), ids=lambda a: a.username)
def test_every_count_is_the_rows_of_its_list(db: Session, client, account: loader.DemoAccount) -> None:  # type: ignore[no-untyped-def]
    b.login(client, account.username, account.password)
    home = client.get("/")
    assert home.status_code == 200
    counts = COUNT.findall(home.text)
    # every role with work in the platform's channels has counts (a 卫健委 sees cockpits, not work items)
    assert counts or account.role == "health_commission", f"{account.username}: no counts on the workbench"
    # a section whose counts are all 0 says so (on a phone its zero counts are hidden: no empty card)
    for section in re.findall(r'<section class="wb-group">(.*?)</section>', home.text, re.S):
        idle = all(n == "0" for n in re.findall(r'data-count="(\d+)"', section))
        assert ("暂无待办" in section) == idle, section[:200]
    for href, key, count, target in counts:
        url = unescape(href).split("#")[0]
        page = client.get(url)
        assert page.status_code == 200, (account.username, key, url)
        assert _total(page.text, target) == int(count), (account.username, key, url)
    client.cookies.clear()


def test_lead_doctor_sees_the_referrals_waiting_and_the_list_opens_on_them(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "tj-lead-doctor", loader.DEMO_PASSWORD)
    home = client.get("/").text
    counts = {key: (int(n), unescape(href)) for href, key, n, _t in COUNT.findall(home)}
    waiting, link = counts["wb-referral-to_triage"]
    assert waiting >= 1 and link == "/referrals?side=receiver&bucket=to_triage"
    # the referral list without a tab in the URL opens on the first tab that has work for this user
    listing = client.get("/referrals").text
    assert re.search(r'id="side-receiver" class="current"', listing)
    assert re.search(r'id="bucket-to_triage" class="current"', listing)
    assert _total(listing, "pager") == waiting
    # every tab carries its count
    assert re.search(r'id="side-count-receiver">\d+<', listing) and re.search(r'id="side-count-sender">\d+<', listing)
    client.cookies.clear()


def test_counts_fragment_and_live_banner_answer_for_a_session(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "tj-lead-doctor", loader.DEMO_PASSWORD)
    fragment = client.get("/workbench/counts")
    assert fragment.status_code == 200 and 'id="workbench"' in fragment.text and "<html" not in fragment.text
    assert 'hx-trigger="every 30s"' in fragment.text
    live = client.get("/workbench/live")
    assert live.status_code == 200 and 'id="unread-badge" hx-swap-oob="true"' in live.text
    client.cookies.clear()
    assert client.get("/workbench/counts", follow_redirects=False).status_code in (401, 303)


def _xlsx_rows(content: bytes) -> list[tuple[object, ...]]:
    from io import BytesIO

    from openpyxl import load_workbook

    sheet = load_workbook(BytesIO(content), read_only=True).worksheets[0]
    return [tuple(r) for r in sheet.iter_rows(values_only=True)]


def test_a_filtered_list_exports_exactly_its_rows(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "baoding-doctor", loader.DEMO_PASSWORD)
    everything = client.get("/referrals?side=sender&bucket=all&per_page=10").text
    total = _total(everything, "pager")
    assert total > 10 and 'id="page-next"' in everything  # more than a page: paging with the total
    filtered = client.get("/referrals?side=sender&bucket=all&status=closed").text
    n = _total(filtered, "pager")
    assert 0 < n < total
    assert 'href="/referrals?side=sender&amp;bucket=all&amp;status=closed&amp;format=xlsx"' in filtered
    export = client.get("/referrals?side=sender&bucket=all&status=closed&format=xlsx")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/vnd.openxml")
    rows = _xlsx_rows(export.content)
    assert rows[0][0] == "编号" and len(rows) - 1 == n  # the header, then exactly the filtered rows
    assert {r[6] for r in rows[1:]} == {"已结案"}
    # a search narrows the list and the export alike
    first = re.search(r'<a href="/referrals/(\d+)">#\1</a>', filtered)
    assert first is not None
    one = client.get(f"/referrals?side=sender&bucket=all&q={first.group(1)}")
    assert _total(one.text, "pager") == 1
    client.cookies.clear()


def test_the_audit_log_exports_what_it_filters(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "tj-auditor", loader.DEMO_PASSWORD)
    client.get("/audit")  # a search of the log is itself audited
    page = client.get("/audit?action=search").text
    assert 'href="/audit?action=search' in page and "format=xlsx" in page
    export = client.get("/audit?action=search&format=xlsx")
    assert export.status_code == 200
    rows = _xlsx_rows(export.content)
    assert rows[0][0] == "时间" and len(rows) > 1
    assert {r[3] for r in rows[1:]} == {rows[1][3]}  # one action: the filter holds in the export
    client.cookies.clear()


@pytest.mark.parametrize("username", ["tj-community-doctor", "tj-lead-doctor", "qukou-doctor"])
def test_the_readable_patients_count_is_the_patient_lists_rows(db: Session, client, username: str) -> None:  # type: ignore[no-untyped-def]
    """The home page's "本机构可查看的患者" and the unfiltered patient list's total count the readable set without
    reading patients (policy.readable_ids); the list's rows and its filtered totals use `readable`: all agree."""
    b.login(client, username, loader.DEMO_PASSWORD)
    count = int(re.search(r'id="patient-count">(\d+)<', client.get("/").text).group(1))  # type: ignore[union-attr]
    assert count > 0
    assert _total(client.get("/patients").text, "pager") == count
    here = _total(client.get("/patients?status=here").text, "pager")
    elsewhere = _total(client.get("/patients?status=elsewhere").text, "pager")
    assert here + elsewhere == count
    rows = client.get("/patients?format=xlsx")
    assert rows.status_code == 200
    assert load_workbook(BytesIO(rows.content)).active.max_row - 1 == count  # the header row, then one per patient
    client.cookies.clear()
