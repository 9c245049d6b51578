"""Pulse surveys: the score formula, declining answers, validation, and one stored response per touch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from followup.config import load_policy
from followup.config.schema import Question, Survey
from followup.db.models import EngagementEvent, SurveyResponse, Touch
from followup.durations import Interval
from followup.engagement.buttons import decode_answer, encode_answer, line_quick_reply, slack_survey_blocks
from followup.engagement.surveys import (
    MSG_CHOICE,
    MSG_REQUIRED,
    MSG_SCALE,
    declining_answers,
    pulse_score,
    record_response,
    validate_answers,
    validity_seconds,
)
from tests.web_fixtures import REPO, WebEnv, make_web_context

POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
PULSE = POLICY.surveys["pulse"]
PRE_START = POLICY.surveys["pre_start"]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"motivation": 5, "anxiety": 1, "understanding": 5}, 5.0),  # anxiety 1 (none) counts as 5
        ({"motivation": 1, "anxiety": 5, "understanding": 1}, 1.0),
        ({"motivation": 4, "anxiety": 2, "understanding": 3}, 3.67),  # (4 + 4 + 3) / 3
        ({"motivation": 3}, 3.0),  # only what was answered counts
        ({"motivation": "4", "anxiety": "4"}, 3.0),  # form strings: (4 + 2) / 2
    ],
)
def test_the_pulse_score_is_the_mean_of_scale_answers_with_reverse_questions_inverted(
    answers: dict[str, object], expected: float
) -> None:
    assert pulse_score(PULSE, answers) == expected


def test_a_response_without_scale_answers_has_no_score() -> None:
    assert pulse_score(PULSE, {"situation": "就職活動は終えた", "comment": "よろしくお願いします"}) is None
    assert pulse_score(PULSE, {"motivation": 9, "anxiety": True}) is None


def test_declining_answers_are_the_choices_marked_declining() -> None:
    assert declining_answers(PULSE, {"situation": "他社も検討している"}) == ["他社も検討している"]
    assert declining_answers(PULSE, {"situation": "就職活動は終えた"}) == []
    assert declining_answers(PRE_START, {"preparation": "入社を迷っている"}) == ["入社を迷っている"]


def test_declining_answers_also_count_inside_a_list_of_answers() -> None:
    # The one definition for storing a response and for quoting it in the flag. The store's old copy
    # read lists of answers and the survey's did not, so a list could be quoted but never flagged.
    answers = {"situation": ["就職活動は終えた", "迷っている"], "motivation": 4}
    assert declining_answers(PULSE, answers) == ["迷っている"]
    assert declining_answers(PULSE, {"situation": ("他社も検討している",)}) == ["他社も検討している"]
    assert declining_answers(PULSE, {"situation": 3, "comment": "迷っている"}) == []  # not a choice answer


def test_valid_form_input_becomes_typed_answers() -> None:
    answers, errors = validate_answers(
        PULSE,
        {
            "motivation": "4",
            "anxiety": ["2"],
            "understanding": " 5 ",
            "situation": "迷っている",
            "comment": "",
            "x": "1",
        },
    )
    assert errors == {}
    assert answers == {"motivation": 4, "anxiety": 2, "understanding": 5, "situation": "迷っている"}


def test_missing_and_invalid_answers_get_japanese_errors_by_question() -> None:
    answers, errors = validate_answers(PULSE, {"motivation": "6", "anxiety": "abc", "situation": "転職する"})
    assert errors == {
        "motivation": MSG_SCALE,
        "anxiety": MSG_SCALE,
        "understanding": MSG_REQUIRED,
        "situation": MSG_CHOICE,
    }
    assert "comment" not in errors  # optional
    assert answers == {}


def test_a_free_text_answer_longer_than_the_limit_is_refused_not_cut() -> None:
    _, errors = validate_answers(
        PULSE,
        {
            "motivation": "3",
            "anxiety": "3",
            "understanding": "3",
            "situation": "迷っている",
            "comment": "あ" * 2001,
        },
    )
    assert set(errors) == {"comment"}


def test_validity_counts_business_days_and_months_generously() -> None:
    assert validity_seconds(Interval(14, "d")) == 14 * 86400
    assert validity_seconds(Interval(2, "w")) == 14 * 86400
    assert validity_seconds(Interval(3, "bd")) >= 5 * 86400
    assert validity_seconds(Interval(1, "mo")) == 31 * 86400


def test_answering_twice_updates_the_one_response_of_the_touch(tmp_path: Path) -> None:
    context = make_web_context(tmp_path)
    first = datetime(2026, 6, 22, 3, 0, tzinfo=UTC)
    env = WebEnv(context, None, None, tmp_path)  # type: ignore[arg-type]
    holder_id = env.holder()
    touch_id = env.survey_touch(holder_id)
    with context.session() as session:
        touch = session.get(Touch, touch_id)
        record_response(session, touch, PULSE, {"motivation": 5, "anxiety": 1, "understanding": 5}, first)
    with context.session() as session:
        touch = session.get(Touch, touch_id)
        record_response(
            session,
            touch,
            PULSE,
            {"motivation": 2, "anxiety": 4, "understanding": 2, "situation": "他社も検討している"},
            first + timedelta(hours=1),
        )
    with context.session() as session:
        rows = list(session.scalars(select(SurveyResponse)))
        assert len(rows) == 1
        assert rows[0].score == 2.0
        assert rows[0].declining is True
        assert rows[0].submitted_at == first
        assert rows[0].updated_at == first + timedelta(hours=1)
        kinds = list(session.scalars(select(EngagementEvent.kind)))
        assert kinds == ["answer", "answer"]


def test_a_merged_partial_answer_keeps_the_earlier_ones(tmp_path: Path) -> None:
    context = make_web_context(tmp_path)
    env = WebEnv(context, None, None, tmp_path)  # type: ignore[arg-type]
    touch_id = env.survey_touch(env.holder())
    now = datetime(2026, 6, 22, 3, 0, tzinfo=UTC)
    with context.session() as session:
        touch = session.get(Touch, touch_id)
        record_response(session, touch, PULSE, {"motivation": 4}, now, merge=True, channel="slack")
        record_response(session, touch, PULSE, {"anxiety": 2}, now, merge=True, channel="slack")
    [row] = env.responses()
    assert row.answers == {"motivation": 4, "anxiety": 2}
    assert row.score == 4.0


def test_slack_blocks_offer_one_to_five_buttons_per_scale_question_and_a_form_link() -> None:
    blocks = slack_survey_blocks(PULSE, "TOKEN.abc", survey_url="https://x.example/s/TOKEN.abc")
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == 4  # motivation, anxiety, understanding + the form button
    first = actions[0]["elements"]
    assert [decode_answer(e["value"]) for e in first] == [("TOKEN.abc", "motivation", v) for v in range(1, 6)]
    assert first[0]["text"]["text"] == "1 低い"
    assert actions[-1]["elements"][0]["url"] == "https://x.example/s/TOKEN.abc"
    ids = [e["action_id"] for a in actions for e in a["elements"]]
    assert len(ids) == len(set(ids))


def test_line_quick_reply_posts_back_the_first_scale_question() -> None:
    reply = line_quick_reply(PULSE, "TOKEN.abc")
    assert len(reply["items"]) == 5
    action = reply["items"][4]["action"]
    assert action["type"] == "postback"
    assert decode_answer(action["data"]) == ("TOKEN.abc", "motivation", 5)
    assert len(action["label"]) <= 20


def test_a_payload_that_is_not_ours_decodes_to_none() -> None:
    assert decode_answer("action=buy&itemid=111") is None
    assert decode_answer(encode_answer("t", "q", 3)) == ("t", "q", 3)


def test_a_survey_without_scale_questions_gets_no_buttons() -> None:
    survey = Survey(title="t", questions=(Question(id="c", text="?", type="text"),))
    assert slack_survey_blocks(survey, "t") == []
    assert line_quick_reply(survey, "t") == {"items": []}
