"""task_statuses: each holder's status per task (提出物・入社前研修) — who changed it and when

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_statuses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "holder_id", sa.Integer(), sa.ForeignKey("offer_holders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("holder_id", "task", name="uq_task_statuses_holder_task"),
    )
    op.create_index("ix_task_statuses_holder_id", "task_statuses", ["holder_id"])
    op.create_index("ix_task_statuses_task", "task_statuses", ["task"])


def downgrade() -> None:
    op.drop_index("ix_task_statuses_task", "task_statuses")
    op.drop_index("ix_task_statuses_holder_id", "task_statuses")
    op.drop_table("task_statuses")
