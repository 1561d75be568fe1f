"""Field encryption with key rotation, and blind indexes for exact search (DOMAIN.md: personal data).

- `encrypt`/`decrypt`/`rotate`: MultiFernet (AES-128-CBC + HMAC-SHA256) under the keys of
  YILIANTI_DATA_KEYS or var/data.keys, newest first: encrypt with the newest, decrypt with any;
  `rotate()` re-encrypts a token under the newest key and the suite's algorithm (`yilianti keys rotate`).
  With YILIANTI_CRYPTO_SUITE=sm (GB/T 39786 commercial cryptography) new tokens are SM4-GCM instead
  ("sm4:" + base64 of key id, nonce, ciphertext and tag; the SM4 key is derived from the data key
  with HMAC-SM3); tokens of either kind decrypt under either suite, so a change of suite is migrated
  by `yilianti keys rotate` while the application runs.
- `blind_index(kind, value)`: a keyed HMAC-SHA256 (HMAC-SM3 under the sm suite) of the normalised value, under an index key of
  its own (YILIANTI_INDEX_KEY or var/index.key, generated on first run next to data.keys), so a
  resident ID or a phone number can be found by exact value without being stored in clear.
  `kind` separates the domains ("id" for identifier values, "phone" for phone numbers).
- `Encrypted`: a column type that stores ciphertext and gives plaintext to Python.
- `blind_indexed(enc, bidx, kind)`: a hybrid attribute over a ciphertext column and its blind
  index: reads give the plaintext, writes set both columns, and at class level
  `Model.attr == x` / `.in_([...])` compile to a comparison of the blind index column, while
  `select(Model.attr)` returns the decrypted value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import ColumnElement, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.hybrid import Comparator, hybrid_property
from sqlalchemy.types import TypeDecorator

from yilianti.config import get_settings

BIDX_LENGTH = 32  # hex characters (128 bits) of the HMAC kept in the index column


@lru_cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in get_settings().resolved_data_keys()])


@lru_cache
def _newest() -> Fernet:
    return Fernet(get_settings().resolved_data_keys()[0].encode())


@lru_cache
def _index_key() -> bytes:
    return get_settings().resolved_index_key().encode()


SM4_PREFIX = "sm4:"
_SM4_KID, _SM4_NONCE, _SM4_TAG = 4, 12, 16


def _hmac_sm3(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


@lru_cache
def _sm4_keys() -> list[tuple[bytes, bytes]]:
    """(key id, SM4 key) per data key, newest first: derived from the data key with HMAC-SM3."""
    out = []
    for key in get_settings().resolved_data_keys():
        derived = _hmac_sm3(base64.urlsafe_b64decode(key.encode()), b"yilianti/sm4-field-key/v1")
        out.append((derived[16:16 + _SM4_KID], derived[:16]))
    return out


def _sm_suite() -> bool:
    return get_settings().crypto_suite == "sm"


def reset() -> None:
    """Forget cached keys (after the settings changed, e.g. a key was added)."""
    _fernet.cache_clear()
    _newest.cache_clear()
    _index_key.cache_clear()
    _sm4_keys.cache_clear()


def _sm4_encrypt(value: str) -> str:
    kid, key = _sm4_keys()[0]
    nonce = os.urandom(_SM4_NONCE)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    body = enc.update(value.encode()) + enc.finalize()
    return SM4_PREFIX + base64.urlsafe_b64encode(kid + nonce + body + enc.tag).decode()


def _sm4_decrypt(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token[len(SM4_PREFIX):].encode())
    except ValueError as exc:
        raise InvalidToken from exc
    kid, nonce = raw[:_SM4_KID], raw[_SM4_KID:_SM4_KID + _SM4_NONCE]
    body, tag = raw[_SM4_KID + _SM4_NONCE:-_SM4_TAG], raw[-_SM4_TAG:]
    for key_id, key in _sm4_keys():
        if key_id != kid:
            continue
        try:
            dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
            return (dec.update(body) + dec.finalize()).decode()
        except Exception:
            continue
    raise InvalidToken


def encrypt(value: str) -> str:
    if _sm_suite():
        return _sm4_encrypt(value)
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    if token.startswith(SM4_PREFIX):
        return _sm4_decrypt(token)
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """The token's value encrypted under the newest key with the suite's algorithm."""
    if not _sm_suite() and not token.startswith(SM4_PREFIX):
        return _fernet().rotate(token.encode()).decode()
    return encrypt(decrypt(token))


def is_current(token: str) -> bool:
    """Whether the token is already under the newest key and the suite's algorithm (rotation skips those)."""
    if token.startswith(SM4_PREFIX):
        if not _sm_suite():
            return False
        try:
            return base64.urlsafe_b64decode(token[len(SM4_PREFIX):].encode())[:_SM4_KID] == _sm4_keys()[0][0]
        except ValueError:
            return False
    if _sm_suite():
        return False
    try:
        _newest().decrypt(token.encode())
    except Exception:
        return False
    return True


def chain_algorithm() -> str:
    """The hash of new audit chain links (audit/chain.py): SM3 under YILIANTI_CRYPTO_SUITE=sm, else SHA-256."""
    return "sm3" if get_settings().crypto_suite == "sm" else "sha256"


def digest(algorithm: str, data: bytes) -> bytes:
    """SM3 (GB/T 32905) or SHA-256 of `data`; each audit chain link names the one it used."""
    if algorithm == "sm3":
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()
    if algorithm == "sha256":
        return hashlib.sha256(data).digest()
    raise ValueError(f"unknown hash algorithm {algorithm!r}")


_PHONE_JUNK = re.compile(r"[\s()\-.]")
_ID_JUNK = re.compile(r"\s")


def normalise(kind: str, value: str) -> str:
    """The form that is indexed: full-width folded; phones without separators or the +86 prefix;
    identifiers without spaces, upper case."""
    text = unicodedata.normalize("NFKC", value).strip()
    if kind == "phone":
        digits = _PHONE_JUNK.sub("", text)
        for prefix in ("+86", "0086"):
            if digits.startswith(prefix):
                return digits[len(prefix):]
        if len(digits) == 13 and digits.startswith("86"):
            return digits[2:]
        return digits
    return _ID_JUNK.sub("", text).upper()


def blind_index(kind: str, value: str | None) -> str | None:
    if value is None:
        return None
    norm = normalise(kind, value)
    if not norm:
        return None
    message = f"{kind}\x1f{norm}".encode()
    if _sm_suite():
        return _hmac_sm3(_index_key(), message).hex()[:BIDX_LENGTH]
    return hmac.new(_index_key(), message, hashlib.sha256).hexdigest()[:BIDX_LENGTH]


TAIL_LENGTH = 4


def tail_index(value: str | None) -> str | None:
    """Blind index of the last four characters of a phone number or an identifier (the picker's
    "last digits" search); None for a value shorter than that."""
    if value is None:
        return None
    norm = normalise("phone", value).upper()  # separators out; a resident ID's x as X
    if len(norm) < TAIL_LENGTH:
        return None
    return blind_index("tail", norm[-TAIL_LENGTH:])


class Encrypted(TypeDecorator[str]):
    """Text column holding a Fernet or SM4 token; Python sees the plaintext. Never compare it in SQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(value)


class BlindComparator(Comparator[str]):
    """Class-level comparisons of an encrypted attribute go through its blind index."""

    def __init__(self, enc: Any, bidx: Any, kind: str) -> None:
        super().__init__(enc)
        self.enc, self.bidx, self.kind = enc, bidx, kind

    def _index(self, other: Any) -> str | None:
        if not isinstance(other, str):
            raise TypeError("an encrypted attribute can only be compared with a literal string")
        return blind_index(self.kind, other)

    def __eq__(self, other: Any) -> ColumnElement[bool]:  # type: ignore[override]
        if other is None:
            return self.bidx.is_(None)  # type: ignore[no-any-return]
        return self.bidx == self._index(other)  # type: ignore[no-any-return]

    def __ne__(self, other: Any) -> ColumnElement[bool]:  # type: ignore[override]
        if other is None:
            return self.bidx.is_not(None)  # type: ignore[no-any-return]
        return self.bidx != self._index(other)  # type: ignore[no-any-return]

    def in_(self, other: Iterable[str]) -> ColumnElement[bool]:  # type: ignore[override]
        return self.bidx.in_([self._index(v) for v in other])  # type: ignore[no-any-return]

    def _bulk_update_tuples(self, value: Any) -> list[tuple[Any, Any]]:
        """update(Model).values({Model.attr: x}) sets the ciphertext and the index."""
        return [(self.expression, value), (self.bidx, blind_index(self.kind, value))]

    def _bulk_dml_setter(self, key: str) -> Callable[[dict[str, Any]], None]:
        """insert(Model) with [{"attr": x}, ...] (ORM bulk insert) fills the ciphertext and the index."""
        enc_key, bidx_key, kind = self.enc.key, self.bidx.key, self.kind

        def setter(mapping: dict[str, Any]) -> None:
            value = mapping.pop(key)
            mapping[enc_key], mapping[bidx_key] = value, blind_index(kind, value)

        return setter

    def is_(self, other: Any) -> ColumnElement[bool]:  # type: ignore[override]
        return self.bidx.is_(other)  # type: ignore[no-any-return]

    def is_not(self, other: Any) -> ColumnElement[bool]:  # type: ignore[override]
        return self.bidx.is_not(other)  # type: ignore[no-any-return]


def blind_indexed(name: str, enc: str, bidx: str, kind: str) -> hybrid_property[str | None]:
    """Hybrid attribute `name` over the `enc` (Encrypted) and `bidx` (blind index) mapped columns."""

    def fget(self: Any) -> str | None:
        return getattr(self, enc)  # type: ignore[no-any-return]

    def fset(self: Any, value: str | None) -> None:
        setattr(self, enc, value)
        setattr(self, bidx, blind_index(kind, value))

    def comparator(cls: Any) -> BlindComparator:
        return BlindComparator(getattr(cls, enc), getattr(cls, bidx), kind)

    fget.__name__ = name
    return hybrid_property(fget, fset, custom_comparator=comparator)  # type: ignore[arg-type]
