"""Source records for persons registered before the online EMPI existed (migration 0009 and
`yilianti empi backfill`): one `patient_record` per active person without any, at the
registering institution, with the same blocking keys as a new registration. Idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection, inspect, text

from yilianti.empi import online
from yilianti.empi.matching import RULES_V1
from yilianti.kit.crypto import blind_index, decrypt, encrypt

_SELECT = """
SELECT p.id, p.name, p.sex, p.birth_date, p.{phone}, p.guardian_phone, p.address, p.registered_by_institution_id,
       (SELECT i.{value} FROM patient_identifier i WHERE i.patient_id = p.id AND i.authority = 'CN-RIC' LIMIT 1)
FROM patient p
WHERE p.active AND NOT EXISTS (SELECT 1 FROM patient_record r WHERE r.patient_id = p.id)
ORDER BY p.id LIMIT :n
"""
_INSERT = """
INSERT INTO patient_record (patient_id, institution_id, name, sex, birth_date, phone, address, rid, name_key,
  surname_key, given_key, birth_key, birth_year, phone_key, link_method, link_score, rules_version, updated_at,
  created_at{extra_cols})
VALUES (:patient_id, :institution_id, :name, :sex, :birth_date, :phone, :address, :rid, :name_key, :surname_key,
  :given_key, :birth_key, :birth_year, :phone_key, 'backfill', NULL, :rules_version, :now, :now{extra_vals})
"""


def _date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _plain(token: str | None) -> str | None:
    return decrypt(token) if token else None


def _cipher(value: str | None) -> str | None:
    return encrypt(value) if value else None


def _same(value: str | None) -> str | None:
    return value


def backfill(conn: Connection, batch: int = 5000) -> int:
    # from migration 0014 on, phones and identifier values are stored encrypted (run from 0009: in clear,
    # and 0014 converts what this wrote)
    encrypted = "phone_enc" in {c["name"] for c in inspect(conn).get_columns("patient")}
    # from migration 0015 on, the record's resident ID also has a blind index (matching compares it)
    rid_key = "rid_key" in {c["name"] for c in inspect(conn).get_columns("patient_record")}
    insert = text(_INSERT.format(extra_cols=", rid_key" if rid_key else "",
                                 extra_vals=", :rid_key" if rid_key else ""))
    select_sql = text(_SELECT.format(phone="phone_enc", value="value_enc") if encrypted
                      else _SELECT.format(phone="phone", value="value"))
    plain, cipher = (_plain, _cipher) if encrypted else (_same, _same)
    done = 0
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored naive UTC, as models.base.UTCDateTime does
    while True:
        rows = conn.execute(select_sql, {"n": batch}).all()
        if not rows:
            return done
        params = []
        for pid, name, sex, birth, phone_enc, gphone_enc, address, inst, rid_enc in rows:
            # raw SQL: the phones and the resident ID come out as ciphertext (kit/crypto.py)
            phone, gphone, rid = plain(phone_enc), plain(gphone_enc), plain(rid_enc)
            demo = online.Demographics(name or "", sex if sex in ("男", "女") else None, _date(birth),
                                       phone or gphone, address, rid)
            k = online.keys(demo.normalised())
            phone_key = k.phone_key if encrypted else demo.normalised().phone or None
            params.append({"patient_id": pid, "institution_id": inst, "name": (name or "")[:60], "sex": demo.sex,
                           "birth_date": demo.birth_date, "phone": cipher(demo.phone), "address": address, "rid": cipher(k.rid),
                           "name_key": k.name_key, "surname_key": k.surname_key, "given_key": k.given_key,
                           "birth_key": k.birth_key, "birth_year": k.birth_year, "phone_key": phone_key,
                           "rules_version": RULES_V1.version, "now": now})
            if rid_key:
                params[-1]["rid_key"] = blind_index("id", k.rid) if k.rid else None
        conn.execute(insert, params)
        done += len(params)
