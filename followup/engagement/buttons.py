"""Survey answers inside chat: Slack Block Kit buttons and LINE quick replies for the scale questions.

Pure builders, no network. Each button carries ``s=<signed survey token>&q=<question id>&v=<1-5>``,
so the webhook learns which touch, question and value were chosen, and a forged value fails the
token's signature check like a forged web link would.

How the delivery code wires them in for a touch of kind ``survey`` (``touch.survey_form`` names the
survey, ``signer = LinkSigner.from_settings(settings)``)::

    token = signer.survey_token(touch.id)
    survey = policy.surveys[touch.survey_form]
    rendered = templates.render(template, {..., "survey_url": signer.survey_url(touch.id)})
    # Slack: the message's blocks, then one row of 1–5 buttons per scale question and a form button
    blocks = (rendered.slack_blocks or []) + slack_survey_blocks(survey, token, survey_url=url)
    blocks = blocks[:50]                       # Slack's limit; the survey blocks are few
    # LINE: quick-reply buttons for the first scale question on the last message
    messages = list(rendered.line_messages or [])
    messages[-1] = {**messages[-1], "quickReply": line_quick_reply(survey, token)}

Answers arrive at ``POST /webhooks/slack`` (interactive payload) and ``POST /webhooks/line``
(postback event); the rest of the survey stays on the web form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

from followup.config.schema import Question, Survey

SLACK_BUTTON_TEXT_LIMIT = 75
SLACK_VALUE_LIMIT = 2000
LINE_LABEL_LIMIT = 20
LINE_DATA_LIMIT = 300
LINE_QUICK_REPLY_MAX = 13
ACTION_PREFIX = "survey_answer"
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


def scale_questions(survey: Survey) -> list[Question]:
    return [q for q in survey.questions if q.type == "scale"]


def _scale_label(question: Question, value: int) -> str:
    if value == 1 and question.low_label:
        return f"1 {question.low_label}"
    if value == 5 and question.high_label:
        return f"5 {question.high_label}"
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_survey_blocks(survey: Survey, token: str, *, survey_url: str | None = None) -> list[dict[str, Any]]:
    """For each scale question a section and an actions block with 1–5 buttons; then a link to the form.

    ``action_id`` is ``survey_answer:<question>:<value>`` (unique within the block, as Slack requires);
    ``value`` is :func:`encode_answer`.
    """
    blocks: list[dict[str, Any]] = []
    for question in scale_questions(survey):
        blocks.append(
            {"type": "section", "text": {"type": "plain_text", "text": question.text, "emoji": True}}
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"{ACTION_PREFIX}:{question.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"{ACTION_PREFIX}:{question.id}:{value}",
                        "text": {
                            "type": "plain_text",
                            "text": _clip(_scale_label(question, value), SLACK_BUTTON_TEXT_LIMIT),
                            "emoji": True,
                        },
                        "value": encode_answer(token, question.id, value),
                    }
                    for value in range(1, 6)
                ],
            }
        )
    if survey_url and len(scale_questions(survey)) < len(survey.questions):
        blocks.append(
            {
                "type": "actions",
                "block_id": f"{ACTION_PREFIX}:form",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_survey_form",
                        "text": {"type": "plain_text", "text": FORM_BUTTON_LABEL, "emoji": True},
                        "url": survey_url,
                    }
                ],
            }
        )
    return blocks


def line_quick_reply(survey: Survey, token: str) -> dict[str, Any]:
    """A ``quickReply`` object: 1–5 postback buttons for the first scale question (no items if none)."""
    questions = scale_questions(survey)
    if not questions:
        return {"items": []}
    question = questions[0]
    items: list[dict[str, Any]] = []
    for value in range(1, 6):
        label = _clip(_scale_label(question, value), LINE_LABEL_LIMIT)
        data = encode_answer(token, question.id, value)
        if len(data) > LINE_DATA_LIMIT:
            raise ValueError(f"LINE postback data longer than {LINE_DATA_LIMIT} characters")
        items.append(
            {
                "type": "action",
                "action": {"type": "postback", "label": label, "data": data, "displayText": label},
            }
        )
    return {"items": items[:LINE_QUICK_REPLY_MAX]}


def with_survey_buttons(
    slack_blocks: list[dict[str, Any]] | None,
    line_messages: list[dict[str, Any]] | None,
    survey: Survey,
    token: str,
    survey_url: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """A survey touch's chat payloads with the answer buttons added (Slack rows, LINE quick reply)."""
    blocks = [*(slack_blocks or []), *slack_survey_blocks(survey, token, survey_url=survey_url)][:50]
    messages = list(line_messages) if line_messages else None
    if messages:
        messages[-1] = {**messages[-1], "quickReply": line_quick_reply(survey, token)}
    return blocks, messages
