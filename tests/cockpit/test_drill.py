"""From a cockpit figure to the rows it counts, and the member and department filters: the rows listed are the
ones counted; who sees which rows (the health commission sees figures, a patient's name only where policy
lets the acting clinician see the patient, and that read is audited)."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from tests import builders as b
from yilianti.auth import service as auth_service
from yilianti.cockpit import service
from yilianti.models.alliance import Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.cockpit import AssistanceRecord
from yilianti.models.referral import Referral


def _by_code(figures):  # type: ignore[no-untyped-def]
    return {f.indicator.code: f for f in figures}


def _ids(html: str, table: str = "referral") -> list[int]:
    return sorted(int(i) for i in re.findall(rf'id="row-{table}-(\d+)"', html))


def _member(db, world, name: str) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(Institution.id).where(Institution.name == name))


def test_member_and_department_filters_count_the_rows_of_that_member(db, world) -> None:  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"]
    late = _member(db, world, "易县医院")
    county = _member(db, world, "涞源县医院")
    paeds = b.department(db, lead, "儿科")
    first = db.scalar(select(Referral).where(Referral.from_institution_id == county).order_by(Referral.id))
    first.to_department_id = paeds.id
    db.flush()
    jan_mar = (date(2026, 1, 1), date(2026, 3, 31))
    whole = _by_code(service.compute(db, aid, *jan_mar))
    by_late = _by_code(service.compute(db, aid, *jan_mar, member=late))
    by_county = _by_code(service.compute(db, aid, *jan_mar, member=county))
    by_paeds = _by_code(service.compute(db, aid, *jan_mar, member=lead.id, department=paeds.id))
    assert whole["referral.up"].value == 3
    assert by_late["referral.up"].value == 1 and by_late["referral.up"].by_month["2026-03"] == 1
    assert by_county["referral.up"].value == 2 and by_county["referral.down"].value == 1
    assert by_paeds["referral.up"].value == 1 and by_paeds["referral.down"].value == 0
    # the lead's released slots are a figure of the whole alliance; help sent down has no department
    assert by_late["sinking.slot_ratio"].value is None and by_late["sinking.slot_ratio"].note
    assert by_paeds["assistance.person_days"].value is None and "科室" in (by_paeds["assistance.person_days"].note or "")
    assert by_late["assistance.person_days"].note is None


def test_drill_down_lists_the_rows_counted_with_names_only_where_allowed(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    counted = sorted(service.compute(db, aid, date(2026, 1, 1), date(2026, 3, 31),
                                     codes=["referral.up"])[0].row_ids["referrals_up"])
    csrf = b.login(client, "cockpitadmin")
    page = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03")
    assert page.status_code == 200, page.text
    assert _ids(page.text) == counted and len(counted) == 3
    # split by member: the county sent two, 易县 one (after it joined), the lead received all three
    member_rows = dict(re.findall(r'<tr id="member-\d+"><td><a [^>]*>([^<]+)</a></td>\s*<td>([^<]*)</td>', page.text))
    assert member_rows == {"保定市第一中心医院": "3", "涞源县医院": "2", "易县医院": "1"}
    # the alliance administrator is no clinician: rows without the patient
    assert "张三" not in page.text and "不显示" in page.text
    # one month's cell links to that month's rows
    cockpit = client.get(f"/cockpit?alliance_id={aid}&start=2026-01&end=2026-03").text
    assert f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-01" in cockpit
    jan = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-01").text
    assert len(_ids(jan)) == 2
    # the list kit: search by institution, page, export
    only = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03&q=易县医院").text
    assert len(_ids(only)) == 1
    paged = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03&per_page=10").text
    assert 'id="list-total"' in paged
    x = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03&format=xlsx")
    assert x.status_code == 200
    rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(min_row=2, values_only=True))
    assert sorted(r[1] for r in rows) == counted and all(r[8] in (None, "") for r in rows)
    # a ratio lists its numerator and its denominator
    rate = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.down_rate&start=2026-01&end=2026-03"
                      "&measure=referrals_down").text
    assert len(_ids(rate)) == 1 and 'id="measure-tabs"' in rate
    # the county's doctor registered the patient: the name is shown, and the read is audited
    client.post("/logout", data={"csrf_token": csrf})
    b.login(client, "cockpitdoc")
    mine = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03")
    assert mine.status_code == 200 and "张三" in mine.text
    audit = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "cockpit_rows")).all()
    assert audit and {a.username for a in audit} == {"cockpitdoc"} and audit[0].patient_id is not None
    # an unknown indicator is a 404, a bad month a 422
    assert client.get(f"/cockpit/rows?alliance_id={aid}&code=nope").status_code == 404
    assert client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-05&end=2026-01").status_code == 422


def test_health_commission_sees_figures_and_help_rows_never_patient_rows(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"]
    county = _member(db, world, "涞源县医院")
    commission = Institution(name="北京市卫生健康委员会", kind="health_authority", province="北京")
    db.add(commission)
    db.add(AssistanceRecord(alliance_id=aid, kind="clinic", from_institution_id=lead.id, to_institution_id=county,
                            person="王主任", start_date=date(2026, 2, 3), sessions=2, patients=30))
    db.flush()
    auth_service.create_user(db, None, "bjcommission", b.PASSWORD, "北京市卫健委", [("health_commission", commission.id, None)])
    db.flush()
    b.login(client, "bjcommission")
    page = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03")
    assert page.status_code == 200
    assert 'id="rows-hidden"' in page.text and not _ids(page.text) and "张三" not in page.text
    assert 'id="by-member"' in page.text  # the split by member is an aggregate
    x = client.get(f"/cockpit/rows?alliance_id={aid}&code=referral.up&start=2026-01&end=2026-03&format=xlsx")
    assert x.status_code == 200 and "spreadsheet" not in x.headers["content-type"]  # the page, not the rows
    help_rows = client.get(f"/cockpit/rows?alliance_id={aid}&code=assistance.patients&start=2026-01&end=2026-03")
    assert _ids(help_rows.text, "assistance_record") and "王主任" in help_rows.text


@pytest.mark.parametrize("member_param", ["member", "department"])
def test_cockpit_page_and_export_follow_the_filters(db, client, world, member_param: str) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    late = _member(db, world, "易县医院")
    dep = b.department(db, db.get(Institution, late), "内科")
    b.login(client, "cockpitadmin")
    query = f"alliance_id={aid}&start=2026-01&end=2026-03&member={late}"
    if member_param == "department":
        query += f"&department={dep.id}"
    page = client.get(f"/cockpit?{query}")
    assert page.status_code == 200
    assert f'<option value="{late}" selected>易县医院</option>' in page.text
    assert 'id="f-department"' in page.text
    x = client.get(f"/cockpit/export.xlsx?{query}")
    ws = load_workbook(io.BytesIO(x.content)).active
    assert "易县医院" in ws.cell(1, 1).value
    rows = {r[0]: r for r in ws.iter_rows(min_row=3, values_only=True)}
    assert rows["referral.up"][-3:] == ((0, 0, 1) if member_param == "member" else (0, 0, 0))
    # a member of another alliance is no filter at all
    other = b.institution(db, "别处医院")
    assert client.get(f"/cockpit?alliance_id={aid}&member={other.id}").status_code == 200


def test_the_list_of_alliances_asks_a_fixed_number_of_queries(db, world) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    from yilianti.cockpit import pages

    for _ in range(15):
        b.alliance(db, (b.institution(db), "lead"))
    subject = b.subject_for(db, world["doctor"])
    asked: list[str] = []
    conn = db.connection()

    def count(*args) -> None:  # type: ignore[no-untyped-def]
        asked.append(args[2])

    event.listen(conn, "before_cursor_execute", count)
    try:
        ids = [a.id for a in pages.visible_alliances(db, subject)]
    finally:
        event.remove(conn, "before_cursor_execute", count)
    assert ids == [world["alliance"].id] and len(asked) <= 3
