"""Start the HL7 MLLP and DICOM C-STORE receivers together (yilianti demo / yilianti worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yilianti.config import Settings


@dataclass
class Receivers:
    parts: list[Any] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    ports: dict[str, tuple[str, int]] = field(default_factory=dict)

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()
        self.parts.clear()
        self.ports.clear()


# the receivers this process started (/readyz checks that they still accept connections)
RUNNING = Receivers()


def start_all(settings: Settings, *, verbose: bool = True) -> Receivers:
    from yilianti.db import session_factory
    from yilianti.diagnostics.receivers import hl7_fast, mllp
    from yilianti.diagnostics.receivers.dicom import DicomReceiver
    from yilianti.diagnostics.receivers.hl7 import Hl7Receiver

    factory = session_factory()
    handle = Receivers()
    hl7: Any
    options = mllp.MllpOptions.from_settings(settings)
    if settings.hl7_fast_path and hl7_fast.enabled(settings.database_url):
        hl7 = hl7_fast.FastHl7Receiver(factory, settings.host, settings.hl7_port, database_url=settings.database_url,
                                       processes=settings.hl7_processes, writers=settings.hl7_writers,
                                       options=options).start()
    else:
        hl7 = Hl7Receiver(factory, settings.host, settings.hl7_port, options).start()
    handle.parts.append(hl7)
    handle.lines.append(f"HL7 MLLP receiver on {settings.host}:{hl7.port}")
    try:
        allowed = [a.strip() for a in settings.dicom_allowed_aes.split(",") if a.strip()]
        dicom = DicomReceiver(factory, settings.host, settings.dicom_port, settings.dicom_ae_title,
                              settings.var_dir / "dicom", allowed).start()
    except BaseException:
        handle.stop()
        raise
    handle.parts.append(dicom)
    handle.lines.append(f"DICOM receiver AE {settings.dicom_ae_title} on {settings.host}:{dicom.port}")
    handle.ports.update(hl7=(settings.host, hl7.port), dicom=(settings.host, dicom.port))
    RUNNING.ports = handle.ports  # the same dict: stopping clears it
    if verbose:
        for line in handle.lines:
            print(line, flush=True)
    return handle
