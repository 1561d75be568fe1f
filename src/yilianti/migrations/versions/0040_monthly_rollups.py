"""The cockpit's rollups per month instead of per day (B5): a row now holds a month's count and sum (its `day` the
month's first day). The daily rows written before cannot be read as months: they are removed with the marks of the
days they held, and the periodic job (or `yilianti cockpit rebuild`) builds the months again from the rows — until
then the cockpit reads the rows, as for any day not built.

Revision ID: 0040
Revises: 0039
"""

from __future__ import annotations

from alembic import op

revision = '0040'
down_revision = '0039'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM cockpit_rollup")
    op.execute("DELETE FROM cockpit_rollup_day")


def downgrade() -> None:  # the monthly rows cannot be read as days either: the job builds them again
    op.execute("DELETE FROM cockpit_rollup")
    op.execute("DELETE FROM cockpit_rollup_day")
