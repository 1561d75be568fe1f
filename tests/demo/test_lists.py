"""The list kit on the remaining lists of the demo (issue 16 item 3): the reading worklist, the patients, the
identity-review queue, the wait-list and the audit log — each with its search, dates, status, paging with the
total, and an xlsx export of exactly the filtered rows; what a user sees, read from the pages themselves."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy.orm import Session

from tests import builders as b
from tests.demo.test_workbench import _total, _xlsx_rows
from yilianti.demo import loader


def _get(client, url: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return page.text


def _export(client, url: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    export = client.get(url)
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/vnd.openxml"), url
    assert 'attachment; filename="' in export.headers["content-disposition"]
    return _xlsx_rows(export.content)


def _export_link(html: str) -> str:
    m = re.search(r'href="([^"]+)" id="export-xlsx"', html)
    assert m is not None, "no export link"
    return unescape(m.group(1))


def test_the_reading_worklist_filters_pages_and_exports(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "xianghe-reader", loader.DEMO_PASSWORD)
    everything = _get(client, "/diagnostics/worklist")
    total = _total(everything, "pager")
    assert total > 1 and _total(everything, "worklist") == total
    # STAT first: once a row is not STAT, no STAT row follows
    prios = re.findall(r'<tr id="wl-\d+".*?<span class="tag [^"]*">([^<]+)</span>', everything, re.S)
    assert prios and prios == sorted(prios, key=lambda p: p != "急诊")
    # one page of two, with the total and a link to the next
    paged = _get(client, "/diagnostics/worklist?per_page=10")
    assert len(re.findall(r'<tr id="wl-\d+"', paged)) == min(total, 10)
    assert ('id="page-next"' in paged) == (total > 10)
    # the status filter: only the rows waiting to be read
    received = _get(client, "/diagnostics/worklist?status=received")
    n = _total(received, "pager")
    statuses = re.findall(r'<td class="status">([^<·]+)', received)
    assert len(statuses) == n and {s.strip() for s in statuses} <= {"待阅片"}
    # a search by accession number finds that one order
    acc = re.search(r'<a href="/diagnostics/orders/\d+">([^<]+)</a>', everything)
    assert acc is not None
    assert _total(_get(client, f"/diagnostics/worklist?q={acc.group(1)}"), "pager") == 1
    # the export is exactly the filtered rows
    link = _export_link(received)
    assert "status=received" in link and "format=xlsx" in link
    rows = _export(client, link)
    assert rows[0][0] == "检查号" and len(rows) - 1 == n
    assert {r[6] for r in rows[1:]} <= {"待阅片"}
    # a date range before any order leaves nothing
    assert _total(_get(client, "/diagnostics/worklist?from=2000-01-01&to=2000-01-31"), "pager") == 0
    client.cookies.clear()


def test_the_audit_log_pages_with_its_total(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "tj-auditor", loader.DEMO_PASSWORD)
    first = _get(client, "/audit?per_page=10")
    total = _total(first, "pager")
    assert total > 10 and 'id="page-next"' in first and "共 " in first
    second = _get(client, "/audit?per_page=10&page=2")
    assert 'id="page-prev"' in second
    # one action other than searching (reading the log adds searches, so their number moves)
    everything = _get(client, "/audit?per_page=200")
    action = next(a for a in re.findall(r'data-action="([^"]+)"', everything) if a != "search")
    one = _get(client, f"/audit?action={action}")
    n = _total(one, "pager")
    assert 0 < n < total + 10
    assert set(re.findall(r'data-action="([^"]+)"', one)) == {action}
    rows = _export(client, _export_link(one))
    assert rows[0][0] == "时间" and len(rows) - 1 == n
    # a user's own name finds their entries; the days filter
    user = re.search(r"<tr><td>[^<]+</td><td>([a-z][\w-]+)</td>", one)
    if user is not None:
        mine = _get(client, f"/audit?action={action}&q={user.group(1)}")
        assert 0 < _total(mine, "pager") <= n
    assert _total(_get(client, f"/audit?action={action}&from=2000-01-01&to=2000-01-02"), "pager") == 0
    # the older date_from/date_to links still filter
    assert _total(_get(client, f"/audit?action={action}&date_from=2000-01-01&date_to=2000-01-02"), "pager") == 0
    client.cookies.clear()


def test_the_patient_list_filters_pages_and_exports(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "tj-community-doctor", loader.DEMO_PASSWORD)
    everything = _get(client, "/patients?per_page=10")
    total = _total(everything, "pager")
    assert total > 10 and 'id="page-next"' in everything
    assert len(re.findall(r'<tr id="patient-\d+"', everything)) == 10
    # registered here: every row names the acting institution as where the patient was registered
    here = _get(client, "/patients?status=here&per_page=200")
    n_here = _total(here, "pager")
    places = set(re.findall(r'data-label="登记机构" class="small c-inst">([^<]*)</td>', here))
    assert 0 < n_here <= total and len(places) == 1
    elsewhere = _total(_get(client, "/patients?status=elsewhere"), "pager")
    assert n_here + elsewhere == total
    # a search by name: every row carries it
    name = re.search(r'<a href="/patients/\d+">([^<]+)</a>', everything)
    assert name is not None
    found = _get(client, f"/patients?q={name.group(1)}")
    assert 1 <= _total(found, "pager") < total
    assert all(name.group(1) in x for x in re.findall(r'<a href="/patients/\d+">([^<]+)</a>', found))
    # the export: the same rows, phones and IDs masked
    rows = _export(client, _export_link(here))
    assert rows[0][:3] == ("姓名", "性别", "年龄") and len(rows) - 1 == n_here
    assert {r[7] for r in rows[1:]} == places
    phones = [str(r[5]) for r in rows[1:] if r[5]]
    assert phones and all("****" in p for p in phones)
    # nobody registered before the platform existed
    assert _total(_get(client, "/patients?from=2000-01-01&to=2000-01-31"), "pager") == 0
    client.cookies.clear()


def test_the_identity_review_queue_filters_pages_and_exports(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "admin", loader.DEMO_PASSWORD)
    open_ = _get(client, "/empi/review")
    n_open = _total(open_, "pager")
    assert n_open > 1 and _total(open_, "candidates") == n_open
    every = _total(_get(client, "/empi/review?status=all"), "pager")
    assert every >= n_open
    paged = _get(client, "/empi/review?per_page=10")
    assert len(re.findall(r'<tr id="candidate-\d+"', paged)) == min(n_open, 10)
    assert ('id="page-next"' in paged) == (n_open > 10)
    # a name on either record narrows the queue; each pair shown carries it
    name = re.search(r'<td data-label="新登记">([^ <·]+)', open_)
    assert name is not None
    found = _get(client, f"/empi/review?q={name.group(1)}")
    hits = re.findall(r'<tr id="candidate-\d+">.*?</tr>', found, re.S)
    assert 1 <= _total(found, "pager") <= n_open and all(name.group(1) in h for h in hits)
    # the status and the search stay in the page links and in the export
    link = _export_link(found)
    assert "status=open" in link and "q=" in link
    rows = _export(client, link)
    assert rows[0][0] == "编号" and len(rows) - 1 == _total(found, "pager")
    assert all(name.group(1) in f"{r[2]} {r[5]}" for r in rows[1:]) and {r[9] for r in rows[1:]} == {"待核对"}
    assert _total(_get(client, "/empi/review?from=2000-01-01&to=2000-01-31"), "pager") == 0
    client.cookies.clear()


def test_the_wait_list_has_tabs_filters_and_export(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "chaoyang-lead-coordinator", loader.DEMO_PASSWORD)
    incoming = _get(client, "/scheduling/waitlist")
    n = _total(incoming, "pager")
    assert n >= 1 and 'id="tab-incoming" aria-current="page"' in incoming
    waiting = _get(client, "/scheduling/waitlist?tab=incoming&status=waiting")
    assert 1 <= _total(waiting, "pager") <= n
    assert set(re.findall(r'<td class="wait-status">([^<]+)</td>', waiting)) == {"待安排"}
    assert _total(_get(client, "/scheduling/waitlist?tab=incoming&status=closed"), "pager") == 0
    assert _total(_get(client, "/scheduling/waitlist?q=腹痛"), "pager") == 1  # the note is searched
    rows = _export(client, _export_link(waiting))
    assert rows[0][0] == "患者" and len(rows) - 1 == _total(waiting, "pager") and rows[1][6] == "待安排"
    client.cookies.clear()
