"""start_all brings both receivers up on settings.host and stops them again."""

from __future__ import annotations

import socket

from tests.diagnostics.conftest import free_port
from yilianti.config import Settings
from yilianti.diagnostics.receivers.start import start_all


def test_start_all_listens_on_the_configured_ports(committed, tmp_path, capsys):  # type: ignore[no-untyped-def]
    hl7_port, dicom_port = free_port(), free_port()
    settings = Settings(host="127.0.0.1", hl7_port=hl7_port, dicom_port=dicom_port, dicom_ae_title="XIANGHE_PACS",
                        var_dir=tmp_path)
    handle = start_all(settings)
    try:
        out = capsys.readouterr().out
        assert f"HL7 MLLP receiver on 127.0.0.1:{hl7_port}" in out
        assert f"DICOM receiver AE XIANGHE_PACS on 127.0.0.1:{dicom_port}" in out
        for port in (hl7_port, dicom_port):
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
    finally:
        handle.stop()
    # both ports are free again: a restarted receiver can listen there. SO_REUSEADDR as servers set
    # it — without it a connection of ours left in TIME_WAIT made this bind fail now and then; with
    # it, Linux still refuses while a socket is listening on the port.
    for port in (hl7_port, dicom_port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
