"""A TB treatment's closing assessment in its own columns (chronic_tb_closing), no longer only the phase event's
text and the audit detail; the closings made so far are read back from that text where it parses (the form
`registry.Closing.text` wrote: "<stop>；应访视 N 次，实际 N 次；应服药 N 次，实际 N 次，服药率 x%（规则服药）[；note]").

Revision ID: 0039
Revises: 0038
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import BigId, UTCDateTime

revision = '0039'
down_revision = '0038'
branch_labels = None
depends_on = None

# the stop reasons' labels as `Closing.text` wrote them when this migration was written
STOPS = {"完成疗程": "completed", "死亡": "died", "丢失": "lost", "转入耐多药治疗": "mdr"}
TEXT = re.compile(r"^(?P<stop>[^；]+)；应访视 (?P<vdue>\d+) 次，实际 (?P<vdone>\d+) 次；应服药 (?P<ddue>\d+) 次，"
                  r"实际 (?P<dtaken>\d+) 次，服药率 [0-9.]+%（(?P<regular>规则服药|未规则服药)）(?:；(?P<note>.*))?$", re.S)


def parse(text: str | None) -> dict[str, object] | None:
    m = TEXT.match(text or "")
    if not m or m.group("stop") not in STOPS:
        return None
    return {"outcome": STOPS[m.group("stop")], "visits_due": int(m.group("vdue")), "visits_done": int(m.group("vdone")),
            "doses_due": int(m.group("ddue")), "doses_taken": int(m.group("dtaken")),
            "regular": m.group("regular") == "规则服药", "note": (m.group("note") or "")[:300] or None}


def upgrade() -> None:
    op.create_table(
        'chronic_tb_closing',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('registration_id', BigId, nullable=False),
        sa.Column('stopped_on', sa.Date(), nullable=False),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('visits_due', sa.Integer(), nullable=True),
        sa.Column('visits_done', sa.Integer(), nullable=True),
        sa.Column('doses_due', sa.Integer(), nullable=True),
        sa.Column('doses_taken', sa.Integer(), nullable=True),
        sa.Column('regular', sa.Boolean(), nullable=False),
        sa.Column('note', sa.String(300), nullable=True),
        sa.Column('assessed_by_user_id', BigId, nullable=True),
        sa.Column('assessed_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['registration_id'], ['chronic_registration.id'],
                                name=op.f('fk_chronic_tb_closing_registration_id_chronic_registration')),
        sa.ForeignKeyConstraint(['assessed_by_user_id'], ['app_user.id'],
                                name=op.f('fk_chronic_tb_closing_assessed_by_user_id_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chronic_tb_closing')),
        sa.UniqueConstraint('registration_id', name=op.f('uq_chronic_tb_closing_registration_id')),
    )
    bind = op.get_bind()
    events = bind.execute(sa.text(
        "SELECT e.id, e.registration_id, e.reason FROM chronic_registration_event e"
        " JOIN chronic_registration r ON r.id = e.registration_id"
        " WHERE r.condition = 'tb' AND e.kind = 'phase' AND e.to_value = 'completed' ORDER BY e.id")).all()
    seen = set()
    for event_id, reg_id, reason in events:  # the dates and who: copied in SQL, as stored
        parsed = parse(reason)
        if parsed is None or reg_id in seen:
            continue
        seen.add(reg_id)
        bind.execute(sa.text(
            "INSERT INTO chronic_tb_closing (created_at, registration_id, stopped_on, outcome, visits_due, visits_done,"
            " doses_due, doses_taken, regular, note, assessed_by_user_id, assessed_at)"
            " SELECT e.created_at, e.registration_id, e.effective_on, :outcome, :visits_due, :visits_done, :doses_due,"
            " :doses_taken, :regular, :note, e.user_id, e.created_at FROM chronic_registration_event e WHERE e.id = :id"),
            {**parsed, "id": event_id})


def downgrade() -> None:
    op.drop_table('chronic_tb_closing')
