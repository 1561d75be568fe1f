"""The diagnostic order state machine, declared once (DOMAIN.md §5).

ordered → acquired (the site took the image / ECG / specimen) → transmitted (sent to the centre)
→ received (the centre has the study or results: DICOM/HL7 arrival or a manual receipt)
→ claimed (one reader is reading it; released back to received)
→ reported (a trainee signed: preliminary, awaiting a second signature) → final → amended;
cancelled from any step before a report exists.
`MOVES` says who may make each move: the ordering site, the reading centre or the
receivers (system, no user).
"""

from __future__ import annotations

from enum import StrEnum

from yilianti.kit.i18n import code_table
from yilianti.kit.workflow import Machine


class Status(StrEnum):
    ordered = "ordered"
    acquired = "acquired"
    transmitted = "transmitted"
    received = "received"
    claimed = "claimed"
    reported = "reported"  # preliminary: a trainee signed, a second signature is due
    final = "final"
    amended = "amended"
    cancelled = "cancelled"


class Side(StrEnum):
    site = "site"  # the ordering (grassroots) site
    centre = "centre"  # the reading centre
    system = "system"  # HL7 / DICOM receivers


SITE = frozenset({Side.site})
CENTRE = frozenset({Side.centre})
SYSTEM_OR_CENTRE = frozenset({Side.system, Side.centre})
ANY = frozenset({Side.site, Side.centre, Side.system})

S = Status
# (from, to) → the sides allowed to make the move. Anything not listed is refused (409).
MOVES: dict[tuple[Status, Status], frozenset[Side]] = {
    (S.ordered, S.acquired): frozenset({Side.site, Side.system}),
    (S.ordered, S.transmitted): SITE,
    (S.acquired, S.transmitted): SITE,
    (S.ordered, S.received): SYSTEM_OR_CENTRE,
    (S.acquired, S.received): SYSTEM_OR_CENTRE,
    (S.transmitted, S.received): SYSTEM_OR_CENTRE,
    (S.received, S.claimed): CENTRE,
    (S.claimed, S.received): CENTRE,  # release the claim
    (S.claimed, S.reported): CENTRE,  # trainee signs: preliminary
    (S.claimed, S.final): CENTRE,  # a non-trainee signs
    (S.received, S.final): frozenset({Side.system}),  # verified lab results from the centre's LIS (OBX-11 F)
    (S.reported, S.final): CENTRE,  # second signature
    (S.final, S.amended): CENTRE,
    (S.amended, S.amended): CENTRE,
    (S.ordered, S.cancelled): frozenset({Side.site, Side.centre}),
    (S.acquired, S.cancelled): frozenset({Side.site, Side.centre}),
    (S.transmitted, S.cancelled): frozenset({Side.site, Side.centre}),
    (S.received, S.cancelled): frozenset({Side.site, Side.centre}),
}

FINAL = frozenset({S.final, S.amended, S.cancelled})
RESULTED = frozenset({S.final, S.amended})  # the ordering site has a signed report
WORKLIST = frozenset({S.received, S.claimed, S.reported})  # what the centre still has to read or sign
BEFORE_RECEIPT = frozenset({S.ordered, S.acquired, S.transmitted})


STATUS_LABELS = code_table("diagnostics.status", {
    S.ordered: "已申请", S.acquired: "已采集", S.transmitted: "已传输", S.received: "待阅片",
    S.claimed: "阅片中", S.reported: "待审核（初步报告）", S.final: "已出报告", S.amended: "已更正",
    S.cancelled: "已取消",
})

STATE_CONFLICT = "diagnostic_state_conflict"
MACHINE: Machine[Status, Side] = Machine(
    status=Status, moves=MOVES, final=FINAL, labels=STATUS_LABELS, conflict_code=STATE_CONFLICT,
    conflict_message="检查单当前状态为“{current}”，不能执行该操作，请刷新后重试")
allowed = MACHINE.allowed


class ReportStatus(StrEnum):
    draft = "draft"
    preliminary = "preliminary"  # a trainee signed; a second signature is due
    final = "final"
    amended = "amended"


SIGNED = frozenset({ReportStatus.final, ReportStatus.amended})  # a report the ordering site may read

PRIORITY_LABELS = code_table("diagnostics.priority", {"routine": "普通", "urgent": "加急", "stat": "急诊"})
PRIORITY_RANK = {"stat": 0, "urgent": 1, "routine": 2}
KIND_LABELS = code_table("diagnostics.kind", {"imaging": "影像", "ecg": "心电", "lab": "检验"})
REPORT_STATUS_LABELS = code_table("diagnostics.report_status", {"draft": "草稿", "preliminary": "初步报告", "final": "正式报告", "amended": "更正报告"})
