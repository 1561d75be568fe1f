"""Expired access tokens of system clients are deleted by a periodic job a day after they expire — also for a
client that never asks for a token again; users' own API tokens are not touched."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests import builders as b
from yilianti.auth.security import new_api_token
from yilianti.kit import clock
from yilianti.models.auth import ApiToken
from yilianti.worker import runner


def _token(db, user, inst, scope, expires_in):  # type: ignore[no-untyped-def]
    _token, prefix, hashed = new_api_token()
    row = ApiToken(user_id=user.id, institution_id=inst.id, name=f"t {scope}", prefix=prefix, token_hash=hashed,
                   scope=scope, expires_at=clock.now() + expires_in)
    db.add(row)
    db.flush()
    return row.id


def test_the_periodic_job_purges_tokens_expired_over_a_day_ago(db):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    user = b.user(db, inst)
    old = _token(db, user, inst, "system/*.read", -timedelta(days=2))
    recent = _token(db, user, inst, "system/*.read", -timedelta(hours=2))  # kept a while: the audit trail names it
    live = _token(db, user, inst, "system/Patient.read", timedelta(minutes=5))
    personal = _token(db, user, inst, None, -timedelta(days=30))  # a user's own API token: its own rules
    runner.load_job_modules()
    assert runner.PERIODIC["auth.purge_access_tokens"].fn(db) == 1
    assert set(db.scalars(select(ApiToken.id))) >= {recent, live, personal}
    assert db.get(ApiToken, old) is None
