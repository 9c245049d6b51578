"""The HR workspace: flag_actions (who did what about a flag), offer_holders.paused_until and
offer_holders.name_kana (search by フリガナ)

Revision ID: 0010
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from followup.db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offer_holders") as batch:
        batch.add_column(sa.Column("name_kana", sa.String(200), nullable=True))
        batch.add_column(sa.Column("paused_until", sa.Date(), nullable=True))
    op.create_table(
        "flag_actions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("flag_id", sa.Integer(), sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "holder_id", sa.Integer(), sa.ForeignKey("offer_holders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(320), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_flag_actions_flag_id", "flag_actions", ["flag_id"])
    op.create_index("ix_flag_actions_holder_id", "flag_actions", ["holder_id"])
    # the workspace list's filters and menus (DISTINCT / GROUP BY read the index, not the table)
    op.create_index("ix_offer_holders_department", "offer_holders", ["department"])
    op.create_index("ix_offer_holders_mentor_email", "offer_holders", ["mentor_email"])
    op.create_index("ix_flags_open_holder", "flags", ["resolved_at", "holder_id"])


def downgrade() -> None:
    op.drop_index("ix_flags_open_holder", "flags")
    op.drop_index("ix_offer_holders_mentor_email", "offer_holders")
    op.drop_index("ix_offer_holders_department", "offer_holders")
    op.drop_index("ix_flag_actions_holder_id", "flag_actions")
    op.drop_index("ix_flag_actions_flag_id", "flag_actions")
    op.drop_table("flag_actions")
    with op.batch_alter_table("offer_holders") as batch:
        batch.drop_column("paused_until")
        batch.drop_column("name_kana")
