"""System clients of the FHIR API registered by an institution's administrator, on the page and with the CLI: the
secret is shown once, an administrator registers clients for its own institution only, and a revoked client's
row says so."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests import builders as b
from tests.labelcheck import code_values, raw_codes, read
from tests.workforce.helpers import tianjin
from yilianti import cli
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import SystemClient


def test_an_administrator_registers_and_revokes_a_client(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.community, "doctor", username="wangli")
    b.user(db, t.community, "institution_admin", username="taoyuan-admin")
    b.login(client, "wangli")
    assert client.get("/admin/clients").status_code == 403
    client.cookies.clear()
    token = b.login(client, "taoyuan-admin")
    assert 'href="/admin/clients"' in client.get("/admin").text
    assert not raw_codes(read(client.get("/admin/clients").text)[0], code_values())  # labels, not codes
    form = {"csrf_token": token, "name": "桃园社区HIS", "institution_id": str(t.community.id),
            "scope": "system/*.read", "secret": "1"}
    bad = client.post("/admin/clients", data=form | {"scope": "patient/*.read", "secret": ""})
    assert bad.status_code == 422 and 'id="err-scope"' in bad.text
    elsewhere = client.post("/admin/clients", data=form | {"institution_id": str(t.lead.id)})
    assert elsewhere.status_code == 403
    done = client.post("/admin/clients", data=form)
    assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
    client_id = re.search(r'id="client-id"[^>]*>([^<]+)<', done.text).group(1)  # type: ignore[union-attr]
    assert re.search(r'id="client-secret"[^>]*>[A-Za-z0-9_-]{40,}<', done.text)
    row = db.scalar(select(SystemClient).where(SystemClient.client_id == client_id))
    assert row.institution_id == t.community.id and row.secret_hash and row.scope == "system/*.read"
    listing = client.get("/admin/clients").text
    assert client_id in listing and 'id="client-secret"' not in listing
    revoked = client.post(f"/admin/clients/{row.id}/revoke", data={"csrf_token": token}, follow_redirects=False)
    assert revoked.status_code == 303
    db.refresh(row)
    assert row.revoked_at is not None
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.resource_type == "system_client",
                                                 AuditEvent.action == "revoke"))


def test_the_cli_registers_a_client(db, capsys, tmp_path):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    keys = tmp_path / "jwks.json"
    keys.write_text('{"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", '
                    '"x": "nsg-DMEVwOzBJlYOGPlDWmzNRd48DpJSqNXkC5N1QA1dHixPCssAgDLXsP8Q3p2c", '
                    '"y": "KsVv-Mc9SclqNMCVPgtLbCUeJk01VBps5KkazebSSTuCcRPV3VljztDeHsOCjLbN"}]}')
    assert cli.main(["client", "add", "--institution", str(t.community.id), "--name", "省平台",
                     "--scope", "system/Patient.read", "system/*.rs", "--jwks", str(keys)]) == 0
    out = capsys.readouterr().out
    client_id = re.search(r"client_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    assert "client_secret" not in out
    assert cli.main(["client", "add", "--institution", str(t.community.id), "--name", "x",
                     "--scope", "user/*.read", "--secret"]) == 2
    assert cli.main(["client", "revoke", client_id]) == 0
    assert cli.main(["client", "revoke", client_id]) == 2
