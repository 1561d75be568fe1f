"""URL paths more than one layer needs to recognise: the FHIR base, below both the FHIR routes (fhir/wire.py) and
the authentication that confines a system client's access token to them (auth/deps.py)."""

from __future__ import annotations

FHIR_BASE = "/fhir"


def is_fhir_path(path: str) -> bool:
    return path == FHIR_BASE or path.startswith(FHIR_BASE + "/")
