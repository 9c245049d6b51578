"""Cohort channels (内定者同士の交流): the bot invites a track's accepted holders to the track's Slack
channel and posts a short peer introduction naming who joined.

Once per holder and channel comes from the database: a ``cohort_invite`` engagement event with the unique
dedupe key ``cohort:<channel>:<holder id>`` is written (committed) before Slack is called, so two ticks or
two schedulers never invite or introduce anyone twice. A Slack error removes this batch's rows again, so
the next tick tries once more; an invitation of someone already in the channel counts as done. Without a
Slack bot token (the outbox stands in) nothing is invited: a file in the outbox would join no one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from followup.channels import Channel, DeliveryError
from followup.channels.base import resolve_env
from followup.config.context import AppContext
from followup.db.models import ChannelOptOut, EngagementEvent, OfferHolder
from followup.vocab import HolderStatus

log = logging.getLogger(__name__)
COHORT_INVITE = "cohort_invite"  # followup.flags.store reads the same kind


def invite_key(channel_id: str, holder_id: int) -> str:
    return f"cohort:{channel_id}:{holder_id}"


def introduction(title: str, names: list[str]) -> str:
    """The peer-introduction post: who joined, in words a fellow offer holder reads gladly."""
    who = "さん、".join(names) + "さん"
    return (
        f"{title}に、新しく{who}が参加しました!\n"
        "同じ春に入社する仲間です。よろしければ、ひと言ずつ自己紹介をどうぞ"
        "(出身地や趣味、入社までに楽しみにしていることなど)。"
    )


@dataclass
class CohortCounts:
    invited: int = 0
    introduced: int = 0
    failed: list[str] = field(default_factory=list)  # tracks whose invitation Slack refused this tick


def invite_cohorts(context: AppContext, now: datetime, slack: Channel | None) -> CohortCounts:
    """Invite every accepted holder with a Slack id (not opted out of Slack, not started yet) who has not
    been invited to their track's cohort channel; one ``conversations.invite`` and one post per track.
    ``slack`` is delivery's Slack channel (the outbox when no token is set: then nothing happens)."""
    from followup.channels.slack import SlackChannel

    counts = CohortCounts()
    policy = context.policy
    wanted = {
        track: (channel_id, cohort)
        for track, cohort in policy.cohorts.items()
        if (channel_id := resolve_env(cohort.slack_channel))
    }
    if not wanted:
        return counts
    if not isinstance(slack, SlackChannel):
        return counts
    today = now.astimezone(policy.organization.tz).date()
    for track, (channel_id, cohort) in wanted.items():
        with context.session() as session:
            opted = select(ChannelOptOut.holder_id).where(ChannelOptOut.channel == "slack")
            invited = select(EngagementEvent.holder_id).where(
                EngagementEvent.kind == COHORT_INVITE, EngagementEvent.holder_id.is_not(None)
            )
            rows = session.execute(
                select(OfferHolder.id, OfferHolder.name, OfferHolder.slack_user_id)
                .where(
                    OfferHolder.track == track,
                    OfferHolder.status == HolderStatus.ACCEPTED.value,
                    OfferHolder.erased_at.is_(None),
                    OfferHolder.slack_user_id.is_not(None),
                    OfferHolder.start_date > today,
                    OfferHolder.id.not_in(opted),
                    OfferHolder.id.not_in(invited),
                )
                .order_by(OfferHolder.id)
            ).all()
        if not rows:
            continue
        keys = [invite_key(channel_id, row.id) for row in rows]
        try:
            with context.session() as session:  # the claim, committed before Slack hears of it
                session.add_all(
                    EngagementEvent(
                        holder_id=row.id,
                        at=now,
                        kind=COHORT_INVITE,
                        channel="slack",
                        payload={"channel": channel_id},
                        dedupe_key=key,
                    )
                    for row, key in zip(rows, keys, strict=True)
                )
        except IntegrityError:
            continue  # another scheduler claimed them first: theirs to invite
        try:
            slack.invite(channel_id, [str(row.slack_user_id) for row in rows])
        except DeliveryError as exc:
            log.warning("cohort %s: Slack refused the invitation: %s", track, exc)
            with context.session() as session:
                session.execute(delete(EngagementEvent).where(EngagementEvent.dedupe_key.in_(keys)))
            counts.failed.append(track)
            continue
        counts.invited += len(rows)
        if cohort.intro:
            try:
                slack.post_to_channel(channel_id, introduction(cohort.title, [row.name for row in rows]))
                counts.introduced += 1
            except DeliveryError as exc:  # they are in: a missing hello is not worth a second invitation
                log.warning("cohort %s: the introduction was not posted: %s", track, exc)
    return counts
