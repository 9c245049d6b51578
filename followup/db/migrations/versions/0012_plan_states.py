"""The plan tick's memory: per-holder plan states, watermarks, and the timestamps they read

``plan_states`` holds, per holder, the digest of the planner inputs the last tick that planned it saw
(and that tick's window), so a steady tick loads only holders whose inputs changed or whose window gained
a slot. ``plan_marks`` holds the watermarks over ``event_rsvps.updated_at`` (new: a waitlist promotion
changes no other timestamp), ``task_statuses.stamped_at``, ``survey_responses.stamped_at`` (new: the write time by this machine's
clock, whatever time HR gave) and the reply
ids, each indexed so a tick reads only the rows changed since the last one, and the policy fingerprint.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_states",
        sa.Column(
            "holder_id",
            sa.Integer(),
            sa.ForeignKey("offer_holders.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("planned_at", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("unreachable", sa.Text(), nullable=True),
    )
    op.create_table(
        "plan_marks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    with op.batch_alter_table("event_rsvps") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    rsvps = sa.table(
        "event_rsvps",
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("responded_at", sa.DateTime(timezone=True)),
        sa.column("attendance_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        rsvps.update().values(updated_at=sa.func.coalesce(rsvps.c.attendance_at, rsvps.c.responded_at))
    )
    op.create_index("ix_event_rsvps_updated_at", "event_rsvps", ["updated_at"])
    # changed_at / updated_at carry the time HR gave (--now, an import's date), which need not grow with
    # the writes: the watermark reads a write stamp of this machine's clock instead
    for table, source in (("task_statuses", "changed_at"), ("survey_responses", "updated_at")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=True))
        rows = sa.table(
            table,
            sa.column("stamped_at", sa.DateTime(timezone=True)),
            sa.column(source, sa.DateTime(timezone=True)),
        )
        op.execute(rows.update().values(stamped_at=rows.c[source]))
        op.create_index(f"ix_{table}_stamped_at", table, ["stamped_at"])


def downgrade() -> None:
    for table in ("survey_responses", "task_statuses"):
        op.drop_index(f"ix_{table}_stamped_at", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("stamped_at")
    op.drop_index("ix_event_rsvps_updated_at", "event_rsvps")
    with op.batch_alter_table("event_rsvps") as batch:
        batch.drop_column("updated_at")
    op.drop_table("plan_marks")
    op.drop_table("plan_states")
