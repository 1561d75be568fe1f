"""Source records for persons registered before the online EMPI existed (migration 0009 and
`yilianti empi backfill`): one `patient_record` per active person without any, at the
registering institution, with the same blocking keys as a new registration. Idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

from yilianti.empi import online
from yilianti.empi.matching import RULES_V1

_SELECT = text("""
SELECT p.id, p.name, p.sex, p.birth_date, p.phone, p.guardian_phone, p.address, p.registered_by_institution_id,
       (SELECT i.value FROM patient_identifier i WHERE i.patient_id = p.id AND i.authority = 'CN-RIC' LIMIT 1)
FROM patient p
WHERE p.active AND NOT EXISTS (SELECT 1 FROM patient_record r WHERE r.patient_id = p.id)
ORDER BY p.id LIMIT :n
""")
_INSERT = text("""
INSERT INTO patient_record (patient_id, institution_id, name, sex, birth_date, phone, address, rid, name_key,
  surname_key, given_key, birth_key, birth_year, phone_key, link_method, link_score, rules_version, updated_at,
  created_at)
VALUES (:patient_id, :institution_id, :name, :sex, :birth_date, :phone, :address, :rid, :name_key, :surname_key,
  :given_key, :birth_key, :birth_year, :phone_key, 'backfill', NULL, :rules_version, :now, :now)
""")


def _date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def backfill(conn: Connection, batch: int = 5000) -> int:
    done = 0
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored naive UTC, as models.base.UTCDateTime does
    while True:
        rows = conn.execute(_SELECT, {"n": batch}).all()
        if not rows:
            return done
        params = []
        for pid, name, sex, birth, phone, gphone, address, inst, rid in rows:
            demo = online.Demographics(name or "", sex if sex in ("男", "女") else None, _date(birth),
                                       phone or gphone, address, rid)
            k = online.keys(demo.normalised())
            params.append({"patient_id": pid, "institution_id": inst, "name": (name or "")[:60], "sex": demo.sex,
                           "birth_date": demo.birth_date, "phone": demo.phone, "address": address, "rid": k.rid,
                           "name_key": k.name_key, "surname_key": k.surname_key, "given_key": k.given_key,
                           "birth_key": k.birth_key, "birth_year": k.birth_year, "phone_key": k.phone_key,
                           "rules_version": RULES_V1.version, "now": now})
        conn.execute(_INSERT, params)
        done += len(params)
