"""flags.since: when the flagged condition began, beside when it was first seen

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import followup.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("since", followup.db.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("since")
