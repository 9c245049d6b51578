"""The talent pool's words and checks, shared by the pool planner (planning/pool.py), delivery and the web.

Pure: who is in the pool, whether a pool touch may go (consent first, 特定電子メール法), and which touch
keys are the pool's. No clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from followup.config.schema import PoolPolicy
from followup.vocab import POOL_CADENCE


@dataclass(frozen=True, slots=True)
class PoolMember:
    """What the pool planner needs about one person (no ORM object crosses this line)."""

    id: int
    external_id: str
    status: str  # rejected | declined (anything else: not, or no longer, in the pool)
    anchor: date | None  # 不採用日, or the day the offer was declined
    consent_date: date | None
    reachable: frozenset[str]  # message channels with an address and no opt-out
    timezone: str | None = None


def is_pool_key(key: str) -> bool:
    """``EXT:pool:…``: a touch of the talent pool, not of an offer holders' cadence."""
    parts = key.split(":")
    return len(parts) >= 5 and parts[-4] == POOL_CADENCE


def needs_consent(pool: PoolPolicy, step_name: str) -> bool:
    """Whether the step ``step_name`` is promotional (consent required); unknown steps are, to be safe."""
    step = next((s for s in pool.steps if s.name == step_name), None)
    return step is None or step.consent


def block_reason(pool: PoolPolicy, status: str, consent_date: date | None, step_name: str) -> str | None:
    """Why a pool touch must not go (checked again at send time: consent and status may have changed)."""
    if not pool.enabled:
        return "人材プールの連絡が無効のため中止"
    if status not in pool.statuses:
        return "人材プールの対象外(再応募・内定など)のため中止"
    if needs_consent(pool, step_name) and consent_date is None:
        return "連絡への同意がないため中止"
    return None


__all__ = ["PoolMember", "block_reason", "is_pool_key", "needs_consent"]
