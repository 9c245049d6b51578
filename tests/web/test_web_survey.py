"""The survey page: signed links, a kind expiry page, 403 for forgeries, one response per touch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from itsdangerous import URLSafeTimedSerializer

from followup.db.models import OfferHolder, SurveyResponse
from followup.delivery.links import SURVEY_SALT
from tests import web_fixtures
from tests.web_fixtures import WebEnv

GOOD = {
    "motivation": "4",
    "anxiety": "2",
    "understanding": "5",
    "situation": "就職活動は終えた",
    "comment": "楽しみです",
}

web = web_fixtures.web  # the fixture, used by name


def _path(env: WebEnv, touch_id: int) -> str:
    return f"/s/{env.signer.survey_token(touch_id)}"


def test_opening_a_survey_link_shows_the_japanese_form_and_records_nothing(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    response = web.client.get(_path(web, touch_id))
    assert response.status_code == 200
    assert "内定者パルスサーベイ" in response.text
    assert "現在の入社意欲を教えてください" in response.text
    assert 'name="motivation" value="5"' in response.text
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    # a mail scanner opening the link twice, even with a query string, changes nothing
    web.client.get(_path(web, touch_id) + "?motivation=1&anxiety=5")
    web.client.head(_path(web, touch_id))
    assert web.count(SurveyResponse) == 0
    assert web.events() == []


def test_submitting_records_the_answers_and_redirects_to_the_thank_you_page(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    response = web.client.post(_path(web, touch_id), data=GOOD)
    assert response.status_code == 303
    assert response.headers["location"] == _path(web, touch_id) + "/thanks"
    thanks = web.client.get(response.headers["location"])
    assert thanks.status_code == 200
    assert "ご回答ありがとうございました" in thanks.text
    [row] = web.responses()
    assert row.answers == {
        "motivation": 4,
        "anxiety": 2,
        "understanding": 5,
        "situation": "就職活動は終えた",
        "comment": "楽しみです",
    }
    assert row.score == 4.33
    assert row.declining is False
    assert [e.kind for e in web.events()] == ["answer"]


def test_answering_twice_updates_the_same_response_and_the_form_shows_it(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    web.client.post(_path(web, touch_id), data=GOOD)
    second = {**GOOD, "motivation": "2", "situation": "他社も検討している"}
    assert web.client.post(_path(web, touch_id), data=second).status_code == 303
    [row] = web.responses()
    assert row.answers["motivation"] == 2
    assert row.declining is True
    assert row.updated_at > row.submitted_at
    page = web.client.get(_path(web, touch_id)).text
    assert "以前のご回答を表示しています" in page
    assert 'name="motivation" value="2" aria-label="2" checked' in page
    assert 'value="他社も検討している" checked' in page


def test_an_incomplete_form_comes_back_with_japanese_errors_and_records_nothing(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    response = web.client.post(_path(web, touch_id), data={"motivation": "4", "comment": "途中です"})
    assert response.status_code == 422
    assert "この質問への回答は必須です。" in response.text
    assert "途中です" in response.text  # what was typed is kept
    assert web.count(SurveyResponse) == 0


def test_an_expired_link_says_so_kindly_and_offers_nothing_else(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    with time_machine.travel(datetime.now(UTC) - timedelta(days=15)):
        old = web.signer.survey_token(touch_id)  # the pulse survey is valid for 14 days
    for response in (web.client.get(f"/s/{old}"), web.client.post(f"/s/{old}", data=GOOD)):
        assert response.status_code == 410
        assert "有効期限が切れています" in response.text
        assert "<form" not in response.text
        assert 'href="http' not in response.text  # only the HR contact (mailto:, tel:)
        assert "山田" not in response.text
    assert web.count(SurveyResponse) == 0


def test_a_link_is_still_valid_on_its_last_day(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    with time_machine.travel(datetime.now(UTC) - timedelta(days=13, hours=23)):
        token = web.signer.survey_token(touch_id)
    assert web.client.get(f"/s/{token}").status_code == 200


def test_forged_and_tampered_links_get_403_and_learn_nothing(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    good = web.signer.survey_token(touch_id)
    payload, stamp, signature = good.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_key = URLSafeTimedSerializer("someone-elses-key", salt=SURVEY_SALT).dumps({"t": touch_id})
    forged = [
        "1",
        "not-a-token",
        f"{payload}.{stamp}.{flipped}",
        f"{payload}x.{stamp}.{signature}",
        other_key,
        web.signer.opt_out_token(1, "email"),  # an opt-out token is not a survey token
    ]
    bodies = set()
    for token in forged:
        for response in (web.client.get(f"/s/{token}"), web.client.post(f"/s/{token}", data=GOOD)):
            assert response.status_code == 403, token
            assert "山田" not in response.text and "パルスサーベイ" not in response.text
            bodies.add(response.text)
    assert len(bodies) == 1  # the same page whatever was wrong
    assert web.count(SurveyResponse) == 0


def test_a_link_to_an_erased_holder_reads_as_expired(web: WebEnv) -> None:
    holder_id = web.holder()
    touch_id = web.survey_touch(holder_id)
    with web.context.session() as session:
        session.get(OfferHolder, holder_id).erased_at = datetime.now(UTC)  # type: ignore[union-attr]
    assert web.client.get(_path(web, touch_id)).status_code == 410


def test_the_pre_start_survey_renders_its_own_questions(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder(), form="pre_start")
    page = web.client.get(_path(web, touch_id)).text
    assert "入社前アンケート" in page and "入社書類や入社前研修" in page


def test_health_and_readiness(web: WebEnv) -> None:
    assert web.client.get("/healthz").json() == {"status": "ok"}
    assert web.client.get("/readyz").json()["database"] is True


def test_a_unicode_digit_in_a_scale_answer_is_a_form_error_not_a_crash(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder())
    response = web.client.post(_path(web, touch_id), data={**GOOD, "motivation": "²"})
    assert response.status_code == 422  # the form again, with its Japanese error
    assert web.count(SurveyResponse) == 0
