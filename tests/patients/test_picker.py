"""The patient picker: type-ahead by name, 拼音首字母, last four of phone / resident ID / record number;
only patients the acting institution may see; every search audited; age and sex on each match."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from tests import builders as b
from yilianti.empi.normalise import name_initials
from yilianti.kit import crypto
from yilianti.models.audit import AuditEvent
from yilianti.models.patient import Patient
from yilianti.web.render import age_parts


def _world(db):  # type: ignore[no-untyped-def]
    comm = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1)
    other = b.institution(db, "无关医院")
    doc = b.subject_for(db, b.user(db, comm, "doctor", username="picker-doc"))
    rid = b.resident_id(date(2019, 5, 2), region="120103", seq=7)
    zhao = b.patient(db, doc, name="赵小明", birth=date(2019, 5, 2), resident_id=rid, phone="13912345678",
                     mrn="TY-20931")
    b.patient(db, doc, name="单田芳", resident_id=b.resident_id(region="120103", seq=8), phone="13800001111")
    stranger = b.patient(db, b.subject_for(db, b.user(db, other, "doctor")), name="赵小红",
                         resident_id=b.resident_id(seq=99), phone="13700005678", consent=None)
    return zhao, stranger, rid


def _names(html: str) -> list[str]:
    import re

    return re.findall(r"<strong>([^<]+)</strong>", html)


def test_initials_and_tails() -> None:
    assert name_initials("赵小明") == "zxm" and name_initials("单田芳") == "stf" and name_initials("欧阳修") == "oyx"
    assert crypto.tail_index("139 1234 5678") == crypto.tail_index("5678")
    assert crypto.tail_index("12010320150308007x") == crypto.tail_index("007X")
    assert crypto.tail_index("12") is None
    assert age_parts(date(2019, 5, 2), date(2026, 5, 1)) == (6, "{n}岁")
    assert age_parts(date(2026, 1, 10), date(2026, 5, 1)) == (3, "{n}个月")
    assert age_parts(date(2026, 4, 20), date(2026, 5, 1)) == (11, "{n}天")


def test_type_ahead_finds_by_each_key_and_only_visible_patients(db, client) -> None:  # type: ignore[no-untyped-def]
    zhao, stranger, rid = _world(db)
    assert zhao.name_initials == "zxm" and zhao.phone_tail_bidx == crypto.tail_index("5678")
    b.login(client, "picker-doc")
    for q in ("赵", "zxm", "ZX", "5678", rid[-4:], "0931", "TY-20931", rid, "13912345678"):
        r = client.get("/patients/pick", params={"pick_q": q})
        assert r.status_code == 200 and _names(r.text) == ["赵小明"], (q, r.text)
    # age and sex beside the name, the resident ID and phone masked
    r = client.get("/patients/pick", params={"pick_q": "zxm"})
    assert "岁" in r.text and rid not in r.text and "139****5678" in r.text
    # a stranger (another institution's patient, no consent path) never shows, by any key
    for q in ("赵小红", "zxh", "5678"):
        assert "赵小红" not in client.get("/patients/pick", params={"pick_q": q}).text
    # each search is audited as the patient search is, with the typed number masked
    logs = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "search", AuditEvent.resource_type == "patient")))
    assert logs and all(rid not in str(log.detail) for log in logs)
    # choosing shows the picked patient (and a stranger's id shows nobody)
    chosen = client.get("/patients/pick/chosen", params={"id": zhao.id})
    assert f'name="patient_id" id="f-patient_id" value="{zhao.id}"' in chosen.text and "赵小明" in chosen.text
    assert "patient-chosen" in chosen.headers["HX-Trigger-After-Settle"]
    hidden = client.get("/patients/pick/chosen", params={"id": stranger.id})
    assert "赵小红" not in hidden.text and 'value=""' in hidden.text


def test_patient_list_searches_by_initials_too(db, client) -> None:  # type: ignore[no-untyped-def]
    _world(db)
    b.login(client, "picker-doc")
    page = client.get("/patients", params={"q": "stf"}).text
    assert "单田芳" in page and "赵小明" not in page
    assert db.scalar(select(Patient.name_initials).where(Patient.name == "单田芳")) == "stf"


def test_migration_0019_fills_the_keys_of_existing_patients(test_db) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from yilianti import db as dbmod
    from yilianti.migrate import alembic_config, upgrade

    url = test_db.new_database_url()
    upgrade(url, revision="0019")
    engine = dbmod.make_engine(url)
    rid = b.resident_id(region="131024", seq=5)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with Session(engine) as s:
            inst = b.institution(s, "渠口镇卫生院", kind="township", level=1)
            s.commit()
            inst_id = inst.id
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO patient (id, name, sex, birth_date, phone_enc, phone_bidx, registered_by_institution_id,"
                " active, created_at) VALUES (1, '曾一鸣', '男', '2015-03-08', :ph, 'x', :i, :t, :now)"),
                {"ph": crypto.encrypt("139 1234 5678"), "i": inst_id, "t": True, "now": now})
            conn.execute(text("INSERT INTO patient_identifier (patient_id, authority, value_enc, value_bidx, created_at)"
                              " VALUES (1, 'CN-RIC', :rid, 'y', :now)"), {"rid": crypto.encrypt(rid), "now": now})
        upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name_initials, phone_tail_bidx FROM patient")).one() == \
                ("zym", crypto.tail_index("5678"))
            assert conn.scalar(text("SELECT tail_bidx FROM patient_identifier")) == crypto.tail_index(rid[-4:])
        command.downgrade(alembic_config(url), "0019")
    finally:
        engine.dispose()
