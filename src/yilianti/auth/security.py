"""Password hashing (argon2 via pwdlib) and API-token helpers."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from yilianti.config import get_settings


@lru_cache
def _hasher(cost: str) -> PasswordHash:
    if cost == "minimal":  # tests only (config refuses it in production): argon2's lowest parameters
        return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))
    return PasswordHash.recommended()


def _current() -> PasswordHash:
    return _hasher(get_settings().password_hash_cost)


def hash_password(password: str) -> str:
    return _current().hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Returns (ok, new_hash_if_the_stored_one_should_be_upgraded)."""
    try:
        return _current().verify_and_update(password, hashed)
    except Exception:  # malformed stored hash: never crash a login
        return False, None


@lru_cache
def _dummy_hash(cost: str) -> str:
    return _hasher(cost).hash("not-a-real-password-" + secrets.token_hex(4))


def dummy_hash() -> str:
    """A hash computed once, so that unknown usernames cost as much as known ones (no timing oracle)."""
    return _dummy_hash(get_settings().password_hash_cost)


def new_api_token() -> tuple[str, str, str]:
    """Returns (token shown once, prefix kept for display, sha256 hash stored)."""
    token = "ylt_" + secrets.token_urlsafe(32)
    return token, token[:12], token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
