"""Pulse surveys: validating a holder's answers, scoring them, and storing one response per touch.

The pulse score of a response is the **mean of its scale answers on 1–5**, where a question marked
``reverse: true`` (a scale on which 5 is bad, e.g. 不安の大きさ) counts as ``6 - x``. Choice and text
answers do not enter the score; a response without any scale answer has no score (``None``).
Higher is better: 5 = motivated and at ease, 1 = at risk. The rules (``low_pulse``, ``pulse_drop``)
read these scores.

A *declining* answer is a choice listed under the question's ``declining:`` (e.g. 「他社も検討している」);
the ``declining_signal`` rule raises a flag for it.

Scoring and validation are pure; :func:`record_response` is the only function here that writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.config.schema import Question, Survey
from followup.db.models import EngagementEvent, SurveyResponse, Touch
from followup.durations import Interval

SCALE_MIN = 1
SCALE_MAX = 5
TEXT_MAX = 2000  # characters of one free-text answer; more is refused rather than cut silently

MSG_REQUIRED = "この質問への回答は必須です。"
MSG_SCALE = "1〜5の中から選んでください。"
MSG_CHOICE = "選択肢の中から選んでください。"
MSG_TEXT_TOO_LONG = f"{TEXT_MAX}文字以内でご記入ください。"


def _scale_value(value: Any) -> int | None:
    """An integer 1–5, or None for anything else (bools, fractions, non-digit strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if SCALE_MIN <= number <= SCALE_MAX else None


def question_score(question: Question, value: Any) -> int | None:
    """One scale answer on the pulse's 1–5 'higher is better' axis (reverse questions inverted)."""
    if question.type != "scale":
        return None
    number = _scale_value(value)
    if number is None:
        return None
    return (SCALE_MAX + SCALE_MIN - number) if question.reverse else number


def pulse_score(survey: Survey, answers: Mapping[str, Any]) -> float | None:
    """Mean of the scale answers (reverse questions as 6 − x), rounded to 2 places; None without any."""
    scores = [s for q in survey.questions if (s := question_score(q, answers.get(q.id))) is not None]
    if not scores:
        return None
    return round(sum(scores) / len(scores), 2)


def declining_answers(survey: Survey, answers: Mapping[str, Any]) -> list[str]:
    """The answers that signal the holder may decline (``declining:`` choices), in question order.

    The one definition, used when a response is stored (its ``declining`` column) and when the rules
    quote what was said. A value may be one answer or a list of them (answers merged from several
    sources, or imported); every listed answer that the question marks as declining counts, whatever
    the question's type.
    """
    found: list[str] = []
    for question in survey.questions:
        if not question.declining:
            continue
        value = answers.get(question.id)
        values = value if isinstance(value, list | tuple) else (value,)
        found.extend(v for v in values if isinstance(v, str) and v in question.declining)
    return found


def _first(value: Any) -> Any:
    """Form data may give a list per field (multi-dict); one answer per question is what counts."""
    if isinstance(value, list | tuple):
        return value[-1] if value else None
    return value


def validate_answers(survey: Survey, form_data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean form input into ``answers`` (scale → int, else str) and Japanese ``errors`` by id.

    Unknown fields are ignored; an unanswered optional question is left out of ``answers``.
    """
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for question in survey.questions:
        raw = _first(form_data.get(question.id))
        text = "" if raw is None else str(raw).strip()
        if not text:
            if question.required:
                errors[question.id] = MSG_REQUIRED
            continue
        if question.type == "scale":
            number = _scale_value(text)
            if number is None:
                errors[question.id] = MSG_SCALE
            else:
                answers[question.id] = number
        elif question.type == "choice":
            if text not in question.choices:
                errors[question.id] = MSG_CHOICE
            else:
                answers[question.id] = text
        else:
            if len(text) > TEXT_MAX:
                errors[question.id] = MSG_TEXT_TOO_LONG
            else:
                answers[question.id] = text
    return answers, errors


def validity_seconds(interval: Interval) -> int:
    """How long a survey link stays valid; business days and months are counted generously."""
    if interval.unit == "bd":
        days = (interval.amount // 5 + 1) * 7
    elif interval.unit == "mo":
        days = 31 * interval.amount
    else:
        days = math.ceil(interval.approx_days())
    return days * 24 * 3600


def record_response(
    session: Session,
    touch: Touch,
    survey: Survey,
    answers: Mapping[str, Any],
    now: datetime,
    *,
    merge: bool = False,
    channel: str = "web",
    dedupe_key: str | None = None,
) -> SurveyResponse:
    """Store the answers of ``touch``'s survey: one row per touch, answering again updates it.

    ``merge=True`` keeps earlier answers the new ones do not mention (a Slack or LINE button answers
    one question at a time). Also records an ``answer`` engagement event for the rules and the timeline.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    form = touch.survey_form or ""
    # FOR UPDATE (PostgreSQL): two button answers merging at once must not overwrite each other
    response = session.scalars(
        select(SurveyResponse).where(SurveyResponse.touch_id == touch.id).with_for_update()
    ).first()
    if response is None:
        merged = dict(answers)
        response = SurveyResponse(
            touch_id=touch.id,
            holder_id=touch.holder_id,
            form=form,
            answers=merged,
            submitted_at=now,
            updated_at=now,
        )
        session.add(response)
    else:
        merged = {**response.answers, **answers} if merge else dict(answers)
        response.answers = merged  # a new dict, so the JSON column is seen as changed
        response.updated_at = now
    response.score = pulse_score(survey, merged)
    response.declining = bool(declining_answers(survey, merged))
    if (
        dedupe_key is None
        or session.scalars(select(EngagementEvent.id).where(EngagementEvent.dedupe_key == dedupe_key)).first()
        is None
    ):
        session.add(
            EngagementEvent(
                holder_id=touch.holder_id,
                touch_id=touch.id,
                at=now,
                kind="answer",
                channel=channel,
                payload={"form": form, "questions": sorted(answers)},
                dedupe_key=dedupe_key,
            )
        )
    session.flush()
    return response
