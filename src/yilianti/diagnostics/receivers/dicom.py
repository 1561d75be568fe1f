"""DICOM C-STORE SCP (pynetdicom) for the shared imaging / ECG centre.

Every instance is written to var_dir/dicom/<StudyInstanceUID>/<SOPInstanceUID>.dcm and linked
by AccessionNumber (0008,0050) to its order in one DB transaction. Unknown accession numbers
are kept in quarantine and still answered 0x0000 Success (CONTRACTS.md "DICOM": the modality
must not retry forever); the quarantine is listed for a person.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session

from yilianti.diagnostics.receivers import ingest
from yilianti.models.diagnostics import InboundMessage
from yilianti.ops import metrics

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


def _safe(uid: str) -> str:
    return re.sub(r"[^0-9A-Za-z.\-]", "_", uid.strip().rstrip("\x00")) or "unknown"


def instance_path(storage_dir: Path, study_uid: str, sop_uid: str) -> Path:
    """Where an instance is kept (the C-STORE receiver and the web upload write the same place)."""
    return storage_dir / _safe(study_uid) / f"{_safe(sop_uid)}.dcm"


class DicomReceiver:
    def __init__(self, factory: Callable[[], Session], host: str, port: int, ae_title: str,
                 storage_dir: Path, allowed_aes: list[str] | None = None) -> None:
        self.factory = factory
        self.host, self.port, self.ae_title = host, port, ae_title
        self.storage_dir = storage_dir
        self.allowed_aes = [a for a in (allowed_aes or []) if a]
        self._server: ThreadedAssociationServer | None = None

    def _on_store(self, event: Any) -> int:
        status = self._store(event)
        metrics.DICOM_INSTANCES.labels("success" if status == SUCCESS else f"0x{status:04X}").inc()
        return status

    def _store(self, event: Any) -> int:
        calling = str(event.assoc.requestor.ae_title).strip()
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            study_uid = str(ds.StudyInstanceUID)
            sop_uid = str(ds.SOPInstanceUID)
        except Exception as exc:  # noqa: BLE001 - corrupt data set: reject, but keep a record
            log.warning("DICOM data set from %s could not be decoded: %s", calling, exc)
            with self.factory() as db:
                db.add(InboundMessage(channel="dicom", status="rejected", sender=calling[:100] or None,
                                      reason=f"无法解析的 DICOM 数据集 (undecodable data set): {exc}"[:2000]))
                db.commit()
            return CANNOT_UNDERSTAND
        path = instance_path(self.storage_dir, study_uid, sop_uid)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(event.encoded_dataset())
            tmp.replace(path)
        except OSError:
            log.exception("DICOM instance %s could not be written", sop_uid)
            return OUT_OF_RESOURCES
        with self.factory() as db:
            try:
                ingest.ingest_dicom(db, ds, path, calling_ae=calling)
                db.commit()
            except Exception:
                db.rollback()
                log.exception("DICOM instance %s could not be recorded", sop_uid)
                return OUT_OF_RESOURCES  # the file is kept; the sender retries later
        return SUCCESS

    def start(self) -> DicomReceiver:
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = StoragePresentationContexts
        ae.maximum_pdu_size = 0
        if self.allowed_aes:
            ae.require_calling_aet = self.allowed_aes
        server = ae.start_server((self.host, self.port), block=False,
                                 evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        assert server is not None
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
