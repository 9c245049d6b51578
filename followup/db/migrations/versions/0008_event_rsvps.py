"""event_rsvps: RSVP answers (出席/欠席/未定, waiting list, seats) and recorded attendance per event

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_rsvps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "holder_id", sa.Integer(), sa.ForeignKey("offer_holders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seat", sa.Integer(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attendance", sa.String(16), nullable=True),
        sa.Column("attendance_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("holder_id", "event", name="uq_event_rsvps_holder_event"),
        sa.UniqueConstraint("event", "seat", name="uq_event_rsvps_event_seat"),
    )
    op.create_index("ix_event_rsvps_holder_id", "event_rsvps", ["holder_id"])
    op.create_index("ix_event_rsvps_event", "event_rsvps", ["event"])


def downgrade() -> None:
    op.drop_index("ix_event_rsvps_event", "event_rsvps")
    op.drop_index("ix_event_rsvps_holder_id", "event_rsvps")
    op.drop_table("event_rsvps")
