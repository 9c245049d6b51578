"""offer_holders.phone: the holder's phone number, shown in the reminder of a call

Revision ID: 0003_phone
Revises: 0002
(When merged with another 0003, point down_revision at it: migrations form one line.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_phone"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offer_holders") as batch:
        batch.add_column(sa.Column("phone", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offer_holders") as batch:
        batch.drop_column("phone")
