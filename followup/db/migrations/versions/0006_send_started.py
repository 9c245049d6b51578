"""touches.send_started_at and touches.in_doubt_resends: sends whose outcome is in doubt

``send_started_at`` is written in the claim's transaction, before the provider is called, and cleared
with the result; a touch found with it still set may already have been accepted by the provider.
``in_doubt_resends`` counts the blind resends such a touch received (email: at most one).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from followup.db.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("send_started_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("in_doubt_resends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("in_doubt_resends")
        batch.drop_column("send_started_at")
