"""Field encryption with key rotation (MultiFernet; keys from YILIANTI_DATA_KEYS or var/data.keys).

Encrypt with the newest key, decrypt with any; `rotate()` re-encrypts a token under the newest.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet

from yilianti.config import get_settings


@lru_cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in get_settings().resolved_data_keys()])


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode()
