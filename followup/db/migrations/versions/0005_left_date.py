"""offer_holders.left_date: the day a joined holder left (入社後の早期離職), from the ATS export

A no-op when the column already exists (another branch adds the optional CSV columns in one migration;
the two are reconciled at merge).

Revision ID: 0005
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _has_column() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("offer_holders")
    return any(column["name"] == "left_date" for column in columns)


def upgrade() -> None:
    if _has_column():
        return
    with op.batch_alter_table("offer_holders") as batch:
        batch.add_column(sa.Column("left_date", sa.Date(), nullable=True))


def downgrade() -> None:
    if not _has_column():
        return
    with op.batch_alter_table("offer_holders") as batch:
        batch.drop_column("left_date")
