"""Password hashing (argon2 via pwdlib) and API-token helpers."""

from __future__ import annotations

import hashlib
import secrets

from pwdlib import PasswordHash

_hasher = PasswordHash.recommended()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Returns (ok, new_hash_if_the_stored_one_should_be_upgraded)."""
    try:
        return _hasher.verify_and_update(password, hashed)
    except Exception:  # malformed stored hash: never crash a login
        return False, None


# A hash computed once, so that unknown usernames cost as much as known ones (no timing oracle).
DUMMY_HASH = hash_password("not-a-real-password-" + secrets.token_hex(4))


def new_api_token() -> tuple[str, str, str]:
    """Returns (token shown once, prefix kept for display, sha256 hash stored)."""
    token = "ylt_" + secrets.token_urlsafe(32)
    return token, token[:12], token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
