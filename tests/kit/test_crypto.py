"""Data keys are generated once with mode 0600 and rotate."""

from __future__ import annotations

import os
import stat

from cryptography.fernet import Fernet

from yilianti.config import Settings
from yilianti.kit import crypto


def test_keys_generated_private_and_stable(tmp_path):  # type: ignore[no-untyped-def]
    s = Settings(var_dir=tmp_path, data_keys=None)
    first = s.resolved_data_keys()
    assert len(first) == 1 and s.resolved_data_keys() == first
    assert stat.S_IMODE(os.stat(tmp_path / "data.keys").st_mode) == 0o600


def test_encrypt_roundtrip_and_rotation(monkeypatch):  # type: ignore[no-untyped-def]
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    from yilianti import config

    monkeypatch.setenv("YILIANTI_DATA_KEYS", old)
    config.get_settings.cache_clear()
    crypto._fernet.cache_clear()
    token = crypto.encrypt("110105201503080011")
    monkeypatch.setenv("YILIANTI_DATA_KEYS", f"{new},{old}")
    config.get_settings.cache_clear()
    crypto._fernet.cache_clear()
    assert crypto.decrypt(token) == "110105201503080011"
    rotated = crypto.rotate(token)
    monkeypatch.setenv("YILIANTI_DATA_KEYS", new)
    config.get_settings.cache_clear()
    crypto._fernet.cache_clear()
    assert crypto.decrypt(rotated) == "110105201503080011"
    config.get_settings.cache_clear()
    crypto._fernet.cache_clear()
