"""Encounters imported from the members' HIS and the out-of-county visit register imported from the insurance
settlement data (models/encounter.py): the rows behind the national indicators 7–12 (issue 19)."""

from __future__ import annotations

from yilianti.kit.i18n import code_table

KIND = "encounter.kind"  # the code table of an encounter's kind
KIND_LABELS = code_table(KIND, {"outpatient": "门诊", "emergency": "急诊", "inpatient": "住院"})
