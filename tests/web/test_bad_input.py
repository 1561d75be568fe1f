"""No 500 from any input (issue 18 item 1): each case a schemathesis run or a reviewer found, on both databases.

Every answer here is a 4xx with the contract's error body {"error", "message", "fields"?}.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests import builders as b
from yilianti.auth import service as auth_service
from yilianti.models.scheduling import Slot

HUGE = "9223372036854775808"  # 2**63: beyond every integer column


def _contract(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body = r.json()
    assert set(body) <= {"error", "message", "fields"} and isinstance(body["error"], str), body
    assert isinstance(body["message"], str) and body["message"], body
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in body.get("fields", {}).items()), body
    return body


@pytest.fixture
def admin_csrf(db, client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    admin = b.user(db, None, "system_admin")
    return {"X-CSRF-Token": b.login(client, admin.username)}


@pytest.fixture
def doctor_token(db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    inst = b.institution(db, "坏输入测试医院")
    doctor = b.user(db, inst, "doctor")
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    _row, token = auth_service.issue_api_token(db, admin, doctor.id, inst.id, "HIS")
    return {"Authorization": f"Bearer {token}"}


def test_ids_beyond_64_bits_in_path_query_and_body(client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    body = _contract(client.get(f"/api/v1/patients/{HUGE}", headers=doctor_token), 422)
    assert "patient_id" in body["fields"]
    _contract(client.get(f"/api/v1/patients/{HUGE}/consents", headers=doctor_token), 422)
    _contract(client.get("/api/v1/referrals", params={"patient_id": HUGE}, headers=doctor_token), 422)
    body = _contract(client.post("/api/v1/bookings", headers=doctor_token,
                                 json={"session_id": int(HUGE), "patient_id": 1}), 422)
    assert "session_id" in body["fields"]
    _contract(client.get("/api/v1/patients/0", headers=doctor_token), 422)


def test_limits_and_counts_are_bounded(client, doctor_token, admin_csrf) -> None:  # type: ignore[no-untyped-def]
    body = _contract(client.get("/api/v1/patients", params={"limit": "34596801754567316"},
                                headers=doctor_token), 422)
    assert "limit" in body["fields"]
    _contract(client.get("/api/v1/patients", params={"offset": HUGE}, headers=doctor_token), 422)
    body = _contract(client.put("/api/v1/recognition/rules", headers=admin_csrf,
                                json={"item_code": "TFT", "scope_code": "JJJ", "valid_days": 3858635891}), 422)
    assert "valid_days" in body["fields"]


def test_every_integer_of_every_request_is_bounded_in_the_openapi(app) -> None:  # type: ignore[no-untyped-def]
    """A client (and schemathesis) reads the bounds from the published schema: no integer without a maximum."""
    spec = app.openapi()
    comps = spec["components"]["schemas"]
    unbounded: set[str] = set()

    def walk(s: Any, where: str, seen: frozenset[str], bounded: bool = False) -> None:
        if not isinstance(s, dict):
            return
        if "$ref" in s:
            name = s["$ref"].split("/")[-1]
            if name not in seen:
                walk(comps[name], f"{where}->{name}", seen | {name})
            return
        bounded = bounded or ("maximum" in s and "minimum" in s) or "enum" in s or "const" in s
        if s.get("type") == "integer" and not bounded:
            unbounded.add(where)
        for key in ("anyOf", "oneOf", "allOf"):  # `int | None`: the bounds may be given once for the whole field
            for sub in s.get(key, []):
                walk(sub, where, seen, bounded)
        walk(s.get("items"), f"{where}[]", seen)
        for name, sub in s.get("properties", {}).items():
            walk(sub, f"{where}.{name}", seen)

    for path, item in spec["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                walk(p.get("schema"), f"{method.upper()} {path} {p['in']}:{p['name']}", frozenset())
            for content in op.get("requestBody", {}).get("content", {}).values():
                walk(content.get("schema"), f"{method.upper()} {path} body", frozenset())
    assert not unbounded, sorted(unbounded)


NUL = "不能包含空字符（NUL）"


def test_nul_in_a_query_string_is_refused_with_the_parameter_named(client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    body = _contract(client.get("/api/v1/patients?q=%00", headers=doctor_token), 422)
    assert body["fields"] == {"q": NUL}
    body = _contract(client.get("/api/v1/patients?q=ab%00c", headers={**doctor_token, "Accept-Language": "en"}),
                     422)
    assert body["fields"] == {"q": "must not contain a NUL character"}
    _contract(client.get("/api/v1/recognition/lookup?patient_id=1&item_code=T%00", headers=doctor_token), 422)
    assert client.get("/patients?q=%00").status_code == 422  # a page: the error page, same status


def test_nul_inside_a_json_string_is_refused(db, client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    person = {"name": "王小明", "sex": "男", "birth_date": "2015-03-08", "address": "天津市河西区\u0000桃园街"}
    body = _contract(client.post("/api/v1/patients", headers=doctor_token, json=person), 422)
    assert body["fields"] == {"body": NUL}
    # a backslash written before "u0000" is text, not a NUL: the registration goes through
    r = client.post("/api/v1/patients", headers=doctor_token, json={**person, "address": "天津市\\u0000桃园街"})
    assert r.status_code == 201, r.text


def test_nul_in_a_form_is_refused(db, client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/login", content=b"username=a%00b&password=x", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "NUL" in r.text


def test_nul_in_a_multipart_text_field_or_part_header_is_refused(db, client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    """A multipart body's text fields reach the database as text: a NUL there is refused like anywhere else, with
    the field named; a file's bytes are binary and pass (here to the 404 of an order that does not exist)."""
    url = f"/api/v1/diagnostics/orders/{HUGE[:9]}/ecg"
    ecg = ("ecg.csv", b"I,II\n1,2\n", "text/csv")
    body = _contract(client.post(url, headers=doctor_token, data={"sample_rate_hz": "50\x000"}, files={"file": ecg}),
                     422)
    assert body["fields"] == {"sample_rate_hz": NUL}
    raw = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="ecg\x00.csv"\r\n\r\nI,II\r\n--b--\r\n')
    body = _contract(client.post(url, content=raw, headers={**doctor_token,
                                                             "Content-Type": "multipart/form-data; boundary=b"}), 422)
    assert body["fields"] == {"file": NUL}  # a filename (httpx would have escaped it; a raw client need not)
    _contract(client.post(url, headers=doctor_token, files={"file": ("ecg.bin", b"\x00\x01" * 70_000, "text/csv")}),
              404)
    # a page's form sent as multipart: the error page, same status
    r = client.post("/login", data={"username": "a\x00b", "password": "x"}, files={"none": ("", b"", "text/plain")})
    assert r.status_code == 422 and "NUL" in r.text


def test_invalid_json_names_the_body_not_a_character_offset(client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    for raw in (b".", b"\x05", '{"name": "王小明",'.encode(), b"Oo"):
        body = _contract(client.post("/api/v1/patients", headers={**doctor_token, "Content-Type": "application/json"},
                                     content=raw), 422)
        assert body["fields"] == {"body": "JSON 格式不正确"}, raw


def test_a_wrong_method_is_405_in_the_contract_with_allow(client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    r = client.put("/api/v1/patients", headers=doctor_token, json={})
    body = _contract(r, 405)
    assert body["error"] == "method_not_allowed"
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    r = client.delete("/api/v1/patients/1/consents", headers=doctor_token)
    assert _contract(r, 405) and "GET" in r.headers["allow"]
    r = client.put("/login")  # a page: the error page, with Allow too
    assert r.status_code == 405 and "GET" in r.headers["allow"]


def test_a_slot_that_does_not_exist_is_404_not_slot_full(db, client) -> None:  # type: ignore[no-untyped-def]
    from tests.scheduling.helpers import world

    w = world(db, capacity=4)
    patient = b.patient(db, w.comm_doc, name="王小虎")
    h = {"X-CSRF-Token": b.login(client, w.comm_doc.username)}
    body = _contract(client.post("/api/v1/bookings", headers=h, json={
        "session_id": w.session.id, "patient_id": patient.id, "slot_id": 987654321}), 404)
    assert body["error"] == "not_found"
    other = world(db, capacity=2, tag="乙")  # a slot of another session is not this session's slot
    their_slot = db.scalar(select(Slot.id).where(Slot.session_id == other.session.id))
    _contract(client.post("/api/v1/bookings", headers=h, json={
        "session_id": w.session.id, "patient_id": patient.id, "slot_id": their_slot}), 404)
    public = next(s for s in client.get(f"/api/v1/sessions/{w.session.id}/slots").json() if s["pool"] == "public")
    assert client.post("/api/v1/bookings", headers=h, json={
        "session_id": w.session.id, "patient_id": patient.id, "slot_id": public["id"]}).status_code == 201
    second = b.patient(db, w.comm_doc, name="李小龙", resident_id=b.resident_id(seq=7))
    body = _contract(client.post("/api/v1/bookings", headers=h, json={
        "session_id": w.session.id, "patient_id": second.id, "slot_id": public["id"]}), 409)
    assert body["error"] == "slot_full"


def test_a_ward_of_an_institution_that_does_not_exist_is_422(db, client, admin_csrf) -> None:  # type: ignore[no-untyped-def]
    body = _contract(client.post("/api/v1/wards", headers=admin_csrf, json={
        "institution_id": 987654321, "name": "儿科一病区", "beds_total": 30}), 422)
    assert body["fields"] == {"institution_id": "机构不存在"}
    here, there = b.institution(db, "病区医院"), b.institution(db, "别处医院")
    dept = b.department(db, there)
    body = _contract(client.post("/api/v1/wards", headers=admin_csrf, json={
        "institution_id": here.id, "department_id": dept.id, "name": "儿科一病区", "beds_total": 30}), 422)
    assert body["fields"] == {"department_id": "该科室不属于所选机构"}
    body = _contract(client.post("/api/v1/wards", headers=admin_csrf, json={
        "institution_id": here.id, "department_id": 987654321, "name": "儿科一病区", "beds_total": 30}), 422)
    assert body["fields"] == {"department_id": "科室不存在"}
    assert client.post("/api/v1/wards", headers=admin_csrf, json={
        "institution_id": here.id, "name": "儿科一病区", "beds_total": 30}).status_code == 201


def test_re_adding_a_member_on_the_day_it_left_is_422(db, client, admin_csrf) -> None:  # type: ignore[no-untyped-def]
    lead, member = b.institution(db, "牵头医院"), b.institution(db, "成员中心")
    alliance = b.alliance(db, (lead, "lead"), name="重加入医联体")
    joined = {"institution_id": member.id, "role": "member", "joined_on": "2024-06-01"}
    r = client.post(f"/api/v1/alliances/{alliance.id}/members", headers=admin_csrf, json=joined)
    assert r.status_code == 201, r.text
    ended = client.post(f"/api/v1/memberships/{r.json()['membership_id']}/end", headers=admin_csrf,
                        json={"left_on": "2024-06-01"})
    assert ended.status_code == 200, ended.text
    body = _contract(client.post(f"/api/v1/alliances/{alliance.id}/members", headers=admin_csrf, json=joined), 422)
    assert body["fields"] == {"institution_id": "该机构在此期间已是本医联体成员"}
    again = client.post(f"/api/v1/alliances/{alliance.id}/members", headers=admin_csrf,
                        json={**joined, "joined_on": "2024-06-02"})
    assert again.status_code == 201, again.text


def test_times_with_an_impossible_offset_are_422(db, client) -> None:  # type: ignore[no-untyped-def]
    from tests.scheduling.helpers import world

    w = world(db, capacity=4)
    h = {"X-CSRF-Token": b.login(client, w.lead_coord.username)}
    template = {"weekday": 2, "start_time": "09:36:40+17:23", "end_time": "11:30", "capacity": 10}
    body = _contract(client.post(f"/api/v1/schedules/{w.schedule.id}/templates", headers=h, json=template), 422)
    assert body["fields"] == {"start_time": "时间应为北京时间 HH:MM（不带时区）"}
    r = client.post(f"/api/v1/schedules/{w.schedule.id}/templates", headers=h,
                    json={**template, "start_time": "08:00:00+08:00"})
    assert r.status_code == 201 and r.json()["start_time"] == "08:00:00", r.text
    for moment in ("2026-01-01T09:00:00+17:23", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-11:00"):
        r = client.post("/api/v1/transfers/987654321/milestones", headers=h, json={"kind": "door", "at": moment})
        assert "at" in _contract(r, 422)["fields"], moment


def test_the_openapi_publishes_the_contract_error_body_for_every_api_error(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/openapi.json").json()
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "message", "fields"} and set(error["required"]) == {"error", "message"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    operations = [(path, method, op) for path, item in spec["paths"].items() if path.startswith("/api/v1/")
                  for method, op in item.items()]
    assert len(operations) > 100
    for path, method, op in operations:
        for status in ("400", "401", "403", "404", "409", "422", "503"):
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        assert ("413" in op["responses"]) == ("requestBody" in op), (method, path)


def test_a_schedule_of_an_institution_that_does_not_exist_is_422(client, admin_csrf) -> None:  # type: ignore[no-untyped-def]
    body = _contract(client.post("/api/v1/schedules", headers=admin_csrf, json={
        "institution_id": 7351, "kind": "clinic", "name": "普通门诊"}), 422)
    assert body["fields"] == {"institution_id": "机构不存在"}


def test_a_reference_no_service_checked_is_422_not_500(app, client, caplog) -> None:  # type: ignore[no-untyped-def]
    """The safety net: a foreign key the database refuses is the client's input (logged as an error to fix)."""
    from sqlalchemy.exc import IntegrityError

    @app.get("/api/_test_integrity")
    def _raise() -> None:
        raise IntegrityError("INSERT ...", {}, Exception("FOREIGN KEY constraint failed"))

    body = _contract(client.get("/api/_test_integrity"), 422)
    assert body["error"] == "invalid_input"
    assert any("integrity error on GET /api/_test_integrity" in r.getMessage() for r in caplog.records)


def test_days_beyond_the_calendar_the_platform_uses_are_422(client, doctor_token) -> None:  # type: ignore[no-untyped-def]
    for day in ("9999-12-31", "0001-01-01"):
        body = _contract(client.get("/api/v1/sessions", params={"start": day}, headers=doctor_token), 422)
        assert "start" in body["fields"], day
    assert client.get("/api/v1/sessions", params={"start": "2199-12-01"}, headers=doctor_token).status_code == 200
