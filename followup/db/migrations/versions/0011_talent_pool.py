"""The talent pool (人材プール): how consent was given, and the earlier record a re-application links to

``offer_holders.consent_source`` says how ``consent_date`` was given (``import`` column 同意, ``web`` the
checkbox on the rejection mail's page); ``offer_holders.reapplied_from_id`` links a person who applies
again under a new external id (same email) to the record they were rejected or declined under.

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = (
    ("consent_source", sa.String(32)),
    ("reapplied_from_id", sa.Integer()),
)


def _existing() -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns("offer_holders")}


def upgrade() -> None:
    existing = _existing()
    with op.batch_alter_table("offer_holders") as batch:
        for name, type_ in COLUMNS:
            if name not in existing:
                batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    existing = _existing()
    with op.batch_alter_table("offer_holders") as batch:
        for name, _ in COLUMNS:
            if name in existing:
                batch.drop_column(name)
