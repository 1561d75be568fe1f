"""Bulk export ($export) for a system client: kick-off with Prefer: respond-async answers 202 and a status URL,
the job runs from the queue (the outbox drain a worker runs), the status answers 202 with X-Progress and then the
manifest, the ndjson files are fetched with the same token and hold only what the client's institution may see
(each line a valid resource), `_type` and `_since` narrow it, DELETE cancels, and all of it is audited."""

from __future__ import annotations

import json

import fhirpy
import httpx
import pytest
from sqlalchemy import select

from tests.fhir.helpers import World, build_world, client_token, validate
from yilianti.models.audit import AuditEvent
from yilianti.worker import runner

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    yield from build_world(test_db)


def _kick_off(world: World, token: str, path: str = "/$export", **params: str) -> httpx.Response:
    return httpx.get(world.fhir + path, params=params, headers={**ASYNC, "Authorization": f"Bearer {token}"})


def _run_queue(world: World) -> None:
    runner.load_job_modules()
    runner.run_pending(world.factory)


def test_a_system_export_runs_as_a_job_and_holds_only_the_institutions_data(world: World) -> None:
    token = client_token(world)
    auth = {"Authorization": f"Bearer {token}"}
    kick = _kick_off(world, token)
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"]
    waiting = httpx.get(status_url, headers=auth)
    assert waiting.status_code == 202 and waiting.headers["x-progress"] == "in the queue"
    _run_queue(world)
    done = httpx.get(status_url, headers=auth)
    assert done.status_code == 200, done.text
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    files = {o["type"]: o for o in manifest["output"]}
    assert {"Patient", "Consent", "ServiceRequest", "Task", "DiagnosticReport", "Observation", "ImagingStudy"} <= set(files)
    patients = httpx.get(files["Patient"]["url"], headers=auth)
    assert patients.status_code == 200 and patients.headers["content-type"].startswith("application/fhir+ndjson")
    lines = [json.loads(line) for line in patients.text.splitlines()]
    assert len(lines) == files["Patient"]["count"]
    for resource in lines:
        validate(resource)
    names = {p["name"][0]["text"] for p in lines}
    assert {"王小明", "赵老汉", "周阿姨"} <= names and "钱女士" not in names and "孙先生" not in names
    # the files are the client's: no token, or another client's, gets nothing
    assert httpx.get(files["Patient"]["url"]).status_code == 401
    other = client_token(world)
    assert httpx.get(files["Patient"]["url"], headers={"Authorization": f"Bearer {other}"}).status_code == 404
    assert httpx.get(status_url, headers={"Authorization": f"Bearer {other}"}).status_code == 404
    # DELETE removes the files; the status is gone
    assert httpx.delete(status_url, headers=auth).status_code == 202
    assert httpx.get(status_url, headers=auth).status_code == 404
    with world.factory() as db:
        actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.resource_type == "bulk_export")))
    assert {"export", "download", "cancel"} <= actions


def test_type_since_and_refusals(world: World) -> None:
    token = client_token(world, "system/Patient.read")
    auth = {"Authorization": f"Bearer {token}"}
    kick = _kick_off(world, token, "/Patient/$export", _type="Patient", _since="2000-01-01T00:00:00+08:00")
    assert kick.status_code == 202, kick.text
    _run_queue(world)
    manifest = httpx.get(kick.headers["content-location"], headers=auth).json()
    assert [o["type"] for o in manifest["output"]] == ["Patient"]
    # nothing changed after a day in the future
    later = _kick_off(world, token, _type="Patient", _since="2999-01-01T00:00:00Z")
    _run_queue(world)
    assert httpx.get(later.headers["content-location"], headers=auth).json()["output"] == []
    # refused: types the scopes do not cover, unknown types, no respond-async, a user's API token
    scoped = _kick_off(world, token, _type="Consent")
    assert scoped.status_code == 403 and validate(scoped.json()).issue[0].code == "forbidden"
    unknown = _kick_off(world, token, _type="Binary")
    assert unknown.status_code == 400 and validate(unknown.json()).issue[0].code == "invalid"
    sync = httpx.get(world.fhir + "/$export", headers=auth)
    assert sync.status_code == 400
    user = _kick_off(world, world.token)
    assert user.status_code == 403 and validate(user.json()).issue[0].code == "forbidden"
    # a queued export cancelled before the worker runs it never runs
    queued = _kick_off(world, token)
    assert httpx.delete(queued.headers["content-location"], headers=auth).status_code == 202
    _run_queue(world)
    assert httpx.get(queued.headers["content-location"], headers=auth).status_code == 404


def test_fhirpy_kicks_off_an_export(world: World) -> None:
    token = client_token(world)
    client = fhirpy.SyncFHIRClient(world.fhir, authorization=f"Bearer {token}",
                                   extra_headers={"Prefer": "respond-async"})
    _data, status = client._do_request("get", "$export", returning_status=True)  # noqa: SLF001 - no public kick-off
    assert status == 202


def test_everything_holds_the_results_of_the_shared_record(world: World) -> None:
    """$everything (and so the export) adds the signed report, the lab result and the study of the patient's record;
    a client of another member sees none of it (404)."""
    bundle = world.get(f"/Patient/{world.patients['wang']}/$everything")
    assert bundle.status_code == 200
    validate(bundle.json())
    ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle.json()["entry"]}
    types = {t for t, _ in ids}
    assert {"Patient", "DiagnosticReport", "Observation", "ImagingStudy", "Consent", "Task"} <= types
    assert world.get(f"/Patient/{world.patients['wang']}/$everything", world.outsider_token).status_code == 404


def test_progress_is_reported_while_the_job_runs_and_files_expire(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """X-Progress tells the patients done and the resources written while the job runs (before its row commits);
    the manifest's Expires is fhir_export_hours after it finished, and the periodic job removes the files then."""
    from datetime import timedelta
    from types import SimpleNamespace

    from yilianti.config import get_settings
    from yilianti.fhir import export
    from yilianti.kit import clock

    _run_queue(world)  # the exports other tests left queued run first
    token = client_token(world, "system/Patient.read system/Consent.read")
    auth = {"Authorization": f"Bearer {token}"}
    kick = _kick_off(world, token, _type="Patient,Consent")
    status_url = kick.headers["content-location"]
    seen: list[str] = []
    real = export.everything

    export_id = int(status_url.rsplit("/", 1)[1])
    assert httpx.get(status_url, headers=auth).headers["x-progress"] == "in the queue"

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        # what the status URL answers now (asked in-process: on SQLite the job's transaction holds the writer's
        # lock a request's token check needs; on PostgreSQL the route answers this while the job runs)
        seen.append(export.progress(SimpleNamespace(id=export_id)))  # type: ignore[arg-type]
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "everything", watched)
    _run_queue(world)
    assert seen[0] == f"patients 0/{len(seen)}"
    assert seen[-1].startswith(f"patients {len(seen) - 1}/{len(seen)}; written: Patient {len(seen) - 1}"), seen
    done = httpx.get(status_url, headers=auth)
    assert done.status_code == 200 and [o["type"] for o in done.json()["output"]][0] == "Patient"
    expires = done.headers["expires"]
    assert expires.endswith(" GMT")
    [patients] = [o for o in done.json()["output"] if o["type"] == "Patient"]
    assert httpx.get(patients["url"], headers=auth).status_code == 200
    assert not list(export.folder(export_id).glob("*.part")) and not (export.folder(export_id) / "progress").exists()
    # a day later the periodic job removes the files; the status URL is gone
    runner.load_job_modules()
    with world.factory() as db:
        assert runner.PERIODIC["fhir.expire_exports"].fn(db) == 0
    later = clock.now() + timedelta(hours=get_settings().fhir_export_hours, minutes=1)
    with clock.frozen(later), world.factory() as db:
        assert runner.PERIODIC["fhir.expire_exports"].fn(db) >= 1
        db.commit()
    assert not export.folder(export_id).exists()
    assert httpx.get(status_url, headers=auth).status_code == 404
    assert httpx.get(patients["url"], headers=auth).status_code == 404


def test_a_delete_while_the_job_runs_is_not_overwritten_and_its_files_go(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """DELETE between the job's start and its end: the job's final write finds the export cancelled, leaves it so
    and removes what it wrote (the status URL stays 404, no file is served)."""
    from yilianti.fhir import export

    _run_queue(world)  # the exports other tests left queued run first
    token = client_token(world, "system/Patient.read")
    auth = {"Authorization": f"Bearer {token}"}
    kick = _kick_off(world, token, _type="Patient")
    status_url = kick.headers["content-location"]
    export_id = int(status_url.rsplit("/", 1)[1])
    real = export.everything
    answers: list[int] = []

    def cancelling(db, subject, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not answers:  # the job has started (its folder is there) and has not finished
            assert export.folder(export_id).exists()
            if db.get_bind().dialect.name == "postgresql":  # the DELETE on its own connection: not blocked by the job
                answers.append(httpx.delete(status_url, headers=auth).status_code)
            else:  # on SQLite the job holds the writer's lock: the DELETE's statements run in the job's transaction
                export.cancel(db, subject, export_id)
                answers.append(202)
        return real(db, subject, *args, **kwargs)

    monkeypatch.setattr(export, "everything", cancelling)
    _run_queue(world)
    assert answers == [202]
    assert httpx.get(status_url, headers=auth).status_code == 404
    assert httpx.get(f"{status_url}/Patient.ndjson", headers=auth).status_code == 404
    assert not export.folder(export_id).exists()
    with world.factory() as db:
        from yilianti.models.bulk import BulkExport
        row = db.get(BulkExport, export_id)
        assert row is not None and row.status == "cancelled" and row.output is None
