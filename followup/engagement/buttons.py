"""Survey answers inside chat: Slack Block Kit buttons and LINE quick replies for the scale questions.

Pure builders, no network. Each button carries ``s=<signed survey token>&q=<question id>&v=<1-5>``,
so the webhook learns which touch, question and value were chosen, and a forged value fails the
token's signature check like a forged web link would.

The buttons are built channel-neutral here (:func:`answer_buttons`); each channel lays them out in its
own format (``Channel.add_answer_buttons``: Slack rows of buttons, LINE quick replies)::

    buttons = answer_buttons(survey, signer.survey_token(touch.id), survey_url)
    parts = channel_class(touch.channel).add_answer_buttons(rendered.parts[touch.channel], buttons)

Answers arrive at ``POST /webhooks/slack`` (interactive payload) and ``POST /webhooks/line``
(postback event); the rest of the survey stays on the web form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

from followup.channels.base import AnswerButtons, AnswerChoice, AnswerQuestion
from followup.channels.slack import ACTION_PREFIX as ACTION_PREFIX
from followup.config.schema import Question, Survey

FORM_BUTTON_LABEL = "残りの質問に回答する"


def encode_answer(token: str, question_id: str, value: int) -> str:
    """The button payload: ``s=TOKEN&q=QUESTION&v=VALUE`` (form-encoded, so ids with symbols survive)."""
    return urlencode({"s": token, "q": question_id, "v": str(value)})


def decode_answer(data: str) -> tuple[str, str, int] | None:
    """``(token, question_id, value)`` from a button payload, or None when it is not one of ours."""
    fields = parse_qs(data, keep_blank_values=False)
    try:
        token, question, value = fields["s"][0], fields["q"][0], fields["v"][0]
    except (KeyError, IndexError):
        return None
    if not (value.isascii() and value.isdigit()):
        return None
    return token, question, int(value)


RSVP_CHOICES = (("attending", "出席"), ("declined", "欠席"), ("maybe", "未定"))
RSVP_BUTTON_KINDS = frozenset({"invitation", "reminder"})  # event touches that ask for an answer
RSVP_FORM_LABEL = "回答ページを開く(ご質問への回答・変更)"


def encode_rsvp(token: str, answer: str) -> str:
    """An RSVP button's payload: ``r=TOKEN&a=ANSWER`` (the ``r=`` prefix tells it from a survey answer)."""
    return urlencode({"r": token, "a": answer})


def decode_rsvp(data: str) -> tuple[str, str] | None:
    fields = parse_qs(data, keep_blank_values=False)
    try:
        return fields["r"][0], fields["a"][0]
    except (KeyError, IndexError):
        return None


def rsvp_buttons(token: str, rsvp_url: str | None = None) -> AnswerButtons:
    """出席 / 欠席 / 未定 as one question of buttons; the page link for the event's questions."""
    choices = tuple(AnswerChoice(label, encode_rsvp(token, answer)) for answer, label in RSVP_CHOICES)
    return AnswerButtons(
        (AnswerQuestion("rsvp", "ご出欠をお知らせください", choices),), rsvp_url, RSVP_FORM_LABEL
    )


def scale_questions(survey: Survey) -> list[Question]:
    return [q for q in survey.questions if q.type == "scale"]


def _scale_label(question: Question, value: int) -> str:
    if value == 1 and question.low_label:
        return f"1 {question.low_label}"
    if value == 5 and question.high_label:
        return f"5 {question.high_label}"
    return str(value)


def answer_buttons(survey: Survey, token: str, survey_url: str | None = None) -> AnswerButtons:
    """1–5 buttons for each scale question; the form link when other questions remain for the web form."""
    questions = tuple(
        AnswerQuestion(
            q.id,
            q.text,
            tuple(AnswerChoice(_scale_label(q, v), encode_answer(token, q.id, v)) for v in range(1, 6)),
        )
        for q in scale_questions(survey)
    )
    form_url = survey_url if survey_url and len(questions) < len(survey.questions) else None
    return AnswerButtons(questions, form_url, FORM_BUTTON_LABEL)


def slack_survey_blocks(survey: Survey, token: str, *, survey_url: str | None = None) -> list[dict[str, Any]]:
    """The Slack layout of :func:`answer_buttons` (``followup.channels.slack.answer_blocks``)."""
    from followup.channels.slack import answer_blocks

    return answer_blocks(answer_buttons(survey, token, survey_url))


def line_quick_reply(survey: Survey, token: str) -> dict[str, Any]:
    """The LINE layout of :func:`answer_buttons` (``followup.channels.line.quick_reply``)."""
    from followup.channels.line import quick_reply

    return quick_reply(answer_buttons(survey, token))
