"""JSON API: order, worklist, claim race answer, report sign, critical acknowledgement; OpenAPI lists them."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests import builders as b
from tests.diagnostics.helpers import dx_world


def test_order_to_report_over_the_api(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    csrf = b.login(client, w.usernames["site"])
    h = {"X-CSRF-Token": csrf}
    cat = client.get("/api/v1/diagnostics/catalogue").json()
    assert {i["code"]: i["price_fen"] for i in cat}["CT-HEAD"] == 16000
    bad = client.post("/api/v1/diagnostics/orders", json={"patient_id": w.patient.id, "item_id": w.ct.id,
                                                          "priority": "asap"}, headers=h)
    assert bad.status_code == 422 and "priority" in bad.json()["fields"]
    r = client.post("/api/v1/diagnostics/orders", json={"patient_id": w.patient.id, "item_id": w.ct.id,
                                                        "priority": "stat"}, headers=h)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "ordered" and order["accession_number"].startswith("DX")
    r = client.post(f"/api/v1/diagnostics/orders/{order['id']}/transitions",
                    json={"to_status": "transmitted", "expected_status": "ordered"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "transmitted"

    client.cookies.clear()
    csrf = b.login(client, w.usernames["reader"])
    h = {"X-CSRF-Token": csrf}
    assert client.get("/api/v1/diagnostics/worklist").json() == []
    pending = client.get("/api/v1/diagnostics/worklist?include_pending=true").json()
    assert [p["order"]["id"] for p in pending] == [order["id"]]
    r = client.post(f"/api/v1/diagnostics/orders/{order['id']}/claim", headers=h)
    assert r.status_code == 409 and r.json()["error"] == "diagnostic_state_conflict"
    client.post(f"/api/v1/diagnostics/orders/{order['id']}/transitions", json={"to_status": "received"}, headers=h)
    wl = client.get("/api/v1/diagnostics/worklist").json()
    assert wl[0]["patient_name"] == w.patient.name and wl[0]["order"]["priority"] == "stat"
    assert client.post(f"/api/v1/diagnostics/orders/{order['id']}/claim", headers=h).json()["status"] == "claimed"
    r = client.put(f"/api/v1/diagnostics/orders/{order['id']}/report", headers=h, json={
        "findings": "右侧颞叶高密度影", "conclusion": "右颞叶脑出血", "critical": True, "sign": True,
        "measurements": {"volume_ml": 25}})
    assert r.status_code == 200 and r.json()["status"] == "final"

    client.cookies.clear()
    csrf = b.login(client, w.usernames["reader2"])
    r = client.post(f"/api/v1/diagnostics/orders/{order['id']}/claim", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409

    client.cookies.clear()
    csrf = b.login(client, w.usernames["site"])
    detail = client.get(f"/api/v1/diagnostics/orders/{order['id']}").json()
    assert detail["report"]["conclusion"] == "右颞叶脑出血" and detail["order"]["tat_minutes"] is not None
    cvs = client.get("/api/v1/diagnostics/critical-values").json()
    assert len(cvs) == 1 and cvs[0]["order_id"] == order["id"]
    r = client.post(f"/api/v1/diagnostics/critical-values/{cvs[0]['id']}/acknowledge", json={"note": "已处理"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and client.get("/api/v1/diagnostics/critical-values").json() == []

    client.cookies.clear()
    b.login(client, w.usernames["outsider"])
    assert client.get(f"/api/v1/diagnostics/orders/{order['id']}").status_code == 404


def test_openapi_documents_the_workflow(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    for p in ("/api/v1/diagnostics/orders", "/api/v1/diagnostics/worklist",
              "/api/v1/diagnostics/orders/{order_id}/claim", "/api/v1/diagnostics/orders/{order_id}/report"):
        assert p in paths
