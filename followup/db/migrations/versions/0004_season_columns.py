"""Holder columns from real ATS exports (phone, acceptance deadline, rejected/left/consent dates) and
touches.held_at (a touch delivery held back keeps delivery's due time; the planner leaves it alone)

Revision ID: 0004
Revises: 0002 (another branch adds 0003; the chain is fixed when both are merged)
"""

import sqlalchemy as sa
from alembic import op

import followup.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HOLDER_DATES = ("acceptance_deadline", "rejected_date", "left_date", "consent_date")


def upgrade() -> None:
    with op.batch_alter_table("offer_holders") as batch:
        batch.add_column(sa.Column("phone", sa.String(32), nullable=True))
        for name in HOLDER_DATES:
            batch.add_column(sa.Column(name, sa.Date(), nullable=True))
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("held_at", followup.db.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("held_at")
    with op.batch_alter_table("offer_holders") as batch:
        for name in reversed(HOLDER_DATES):
            batch.drop_column(name)
        batch.drop_column("phone")
