"""Chinese resident data through the registration API and form (issue 18 item 6): historic region codes, birth
years, rare characters and the middle dot — one validator (kit.validate) behind every entry point."""

from __future__ import annotations

from datetime import date

from tests import builders as b
from yilianti.auth import service as auth_service


def _token(db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    inst = b.institution(db, "香河县人民医院")
    doctor = b.user(db, inst, "doctor")
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    _row, token = auth_service.issue_api_token(db, admin, doctor.id, inst.id, "HIS")
    return {"Authorization": f"Bearer {token}"}


def test_register_a_xianghe_resident_born_before_1988_with_a_rare_character(db, client) -> None:  # type: ignore[no-untyped-def]
    h = _token(db)
    rid = b.resident_id(date(1980, 5, 6), region="131024")
    r = client.post("/api/v1/patients", headers=h, json={"name": "吴𪚥", "resident_id": rid})
    assert r.status_code == 201, r.text
    read = client.get(f"/api/v1/patients/{r.json()['id']}", headers=h).json()
    assert read["name"] == "吴𪚥" and read["birth_date"] == "1980-05-06" and read["sex"] == "男"
    r = client.post("/api/v1/patients", headers=h, json={"name": "阿依古丽•买买提", "sex": "女",
                                                          "birth_date": "1990-01-02"})
    assert r.status_code == 201, r.text
    assert client.get(f"/api/v1/patients/{r.json()['id']}", headers=h).json()["name"] == "阿依古丽·买买提"


def test_an_impossible_birth_year_is_refused_alike_in_the_id_and_the_birth_date(db, client) -> None:  # type: ignore[no-untyped-def]
    h = _token(db)
    r = client.post("/api/v1/patients", headers=h, json={
        "name": "王古人", "resident_id": b.resident_id(date(1800, 1, 1), region="110105")})
    assert r.status_code == 422 and r.json()["fields"] == {"resident_id": "身份证号中的出生日期不合理"}, r.text
    r = client.post("/api/v1/patients", headers={**h, "Accept-Language": "en"},
                    json={"name": "王古人", "sex": "男", "birth_date": "1800-01-01"})
    assert r.status_code == 422 and r.json()["fields"] == {"birth_date": "Implausible birth date"}, r.text
