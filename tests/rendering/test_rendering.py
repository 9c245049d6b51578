"""Message rendering: shipped templates, the sandbox, error locations, locale fallback, channel payloads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from followup.channels.line import LineChannel, default_line_messages
from followup.channels.slack import default_slack_blocks
from followup.rendering.templates import (
    MessageTemplates,
    TemplateProblem,
    honorific,
    jdate,
    jdatetime,
    sample_context,
)

LINE_TEXT_LIMIT = LineChannel.max_text_length
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
JA_NAMES = [
    "welcome_president",
    "mentor_intro",
    "monthly_update",
    "zadankai_invite",
    "konshinkai_invite",
    "naiteishiki_guide",
    "prestart_checklist",
    "first_day_schedule",
    "pulse_survey",
    "checkin",
]
EN_NAMES = ["welcome_president", "monthly_update", "pulse_survey", "checkin"]


@pytest.fixture()
def ja() -> MessageTemplates:
    return MessageTemplates(TEMPLATES, "ja")


@pytest.fixture()
def en() -> MessageTemplates:
    return MessageTemplates(TEMPLATES, "en")


def write_message(root: Path, name: str, text: str, *, subject: str = "件名", locale: str = "ja") -> Path:
    """A one-off message directory under a tmp templates root; returns the text.j2 path."""
    folder = root / "messages" / locale / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.j2").write_text(subject, encoding="utf-8")
    (folder / "text.j2").write_text(text, encoding="utf-8")
    return folder / "text.j2"


def all_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in all_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in all_strings(v)]
    return []


# --- the shipped templates -----------------------------------------------------------------------------


def test_it_ships_every_required_japanese_template(ja: MessageTemplates) -> None:
    assert set(JA_NAMES) <= set(ja.names())


@pytest.mark.parametrize("name", JA_NAMES)
def test_every_japanese_template_renders_against_the_sample_context(ja: MessageTemplates, name: str) -> None:
    msg = ja.render(name, sample_context())

    assert msg.subject.strip() == msg.subject and msg.subject
    assert "\n" not in msg.subject
    assert "山田 花子 様" in msg.text
    if name == "welcome_president":  # signed by the president alone
        assert msg.text.rstrip().endswith("代表取締役社長 佐藤 一郎") and "saiyo@sample.co.jp" not in msg.text
    else:
        assert "株式会社サンプル" in msg.text and "saiyo@sample.co.jp" in msg.text  # signature block
    assert msg.html is not None and "<table" in msg.html and "株式会社サンプル" in msg.html
    assert msg.parts["slack"] and msg.parts["line"]


@pytest.mark.parametrize("name", JA_NAMES)
def test_check_passes_for_every_japanese_template(ja: MessageTemplates, name: str) -> None:
    ja.check(name)


@pytest.mark.parametrize("name", EN_NAMES)
def test_check_passes_for_every_english_template(en: MessageTemplates, name: str) -> None:
    en.check(name)
    assert "Dear 山田 花子," in en.render(name, sample_context()).text


@pytest.mark.parametrize("name", JA_NAMES)
def test_html_escapes_a_holder_name_but_text_keeps_it(ja: MessageTemplates, name: str) -> None:
    context = sample_context()
    context["holder"]["name"] = "<script>alert(1)</script>"

    msg = ja.render(name, context)

    assert msg.html is not None
    assert "<script>" not in msg.html
    assert "&lt;script&gt;" in msg.html
    assert "<script>alert(1)</script>" in msg.text  # plain text is not HTML: nothing to escape


@pytest.mark.parametrize("name", JA_NAMES)
def test_links_appear_only_when_they_are_set(ja: MessageTemplates, name: str) -> None:
    context = sample_context()
    with_links = ja.render(name, context)
    without = ja.render(name, {**context, "survey_url": None, "unsubscribe_url": None})

    assert with_links.html is not None
    if ja.meta(name).opt_out_link:
        assert context["unsubscribe_url"] in with_links.text and context["unsubscribe_url"] in with_links.html
    else:  # the president's letter: no bulk-mail opt-out footer
        assert context["unsubscribe_url"] not in with_links.text + with_links.html
    if name != "welcome_president":
        assert context["survey_url"] in with_links.text
    assert "None" not in without.text and "None" not in (without.html or "")
    assert "/s/" not in without.text and "/u/" not in without.text


def test_the_pulse_survey_says_it_takes_about_one_minute(ja: MessageTemplates) -> None:
    msg = ja.render("pulse_survey", sample_context())

    assert "約1分" in msg.text
    assert msg.html is not None and msg.html.count(sample_context()["survey_url"]) == 1  # one button, not two


def test_event_templates_show_the_event_in_japanese_date_format(ja: MessageTemplates) -> None:
    for name in ("zadankai_invite", "konshinkai_invite", "naiteishiki_guide"):
        msg = ja.render(name, sample_context())
        assert "2026年8月20日(木) 18:00" in msg.text
        assert "2026年8月13日(木)" in msg.text  # the RSVP deadline


def test_mid_career_holders_get_mid_career_wording(ja: MessageTemplates) -> None:
    context = sample_context()
    context["holder"]["track"] = "mid_career"

    checklist = ja.render("prestart_checklist", context).text

    assert "源泉徴収票" in checklist and "卒業証明書" not in checklist


def test_names_lists_only_message_directories(ja: MessageTemplates) -> None:
    assert not [n for n in ja.names() if n.startswith("_")]
    assert ja.exists("checkin") and not ja.exists("no_such_message") and not ja.exists("../ja")


# --- errors name the file and the line -----------------------------------------------------------------


def test_an_undefined_variable_is_a_problem_naming_file_and_line(tmp_path: Path) -> None:
    text = write_message(tmp_path, "typo", "{{ holder.name }} 様\n\nご入社日:{{ holder.start_dte }}\n")
    templates = MessageTemplates(tmp_path)

    with pytest.raises(TemplateProblem) as caught:
        templates.check("typo")

    assert caught.value.path == text.resolve()
    assert caught.value.line == 3
    assert "start_dte" in caught.value.message
    assert str(caught.value).startswith(f"{text.resolve()}:3: ")


def test_an_undefined_variable_in_the_layout_is_reported_in_the_layout(tmp_path: Path) -> None:
    write_message(tmp_path, "m", "本文")
    layout = tmp_path / "messages" / "ja" / "_layout.html.j2"
    layout.write_text("<p>\n{% block content %}{% endblock %}\n{{ company.nmae }}\n</p>", encoding="utf-8")
    (tmp_path / "messages" / "ja" / "m" / "html.j2").write_text(
        '{% extends "messages/ja/_layout.html.j2" %}{% block content %}x{% endblock %}', encoding="utf-8"
    )

    with pytest.raises(TemplateProblem) as caught:
        MessageTemplates(tmp_path).render("m", sample_context())

    assert (caught.value.path, caught.value.line) == (layout.resolve(), 3)


def test_a_syntax_error_is_a_problem_naming_file_and_line(tmp_path: Path) -> None:
    text = write_message(tmp_path, "broken", "こんにちは\n{% if survey_url %}\nアンケート\n")

    with pytest.raises(TemplateProblem) as caught:
        MessageTemplates(tmp_path).render("broken", sample_context())

    assert caught.value.path == text.resolve()
    assert caught.value.line is not None and caught.value.line >= 2
    assert "syntax error" in caught.value.message


def test_a_multi_line_subject_is_rejected(tmp_path: Path) -> None:
    write_message(tmp_path, "two_lines", "本文", subject="一行目\n{{ company.name }}\n")

    with pytest.raises(TemplateProblem, match="single line"):
        MessageTemplates(tmp_path).render("two_lines", sample_context())


def test_a_missing_message_is_a_problem(ja: MessageTemplates) -> None:
    with pytest.raises(TemplateProblem, match="no message template"):
        ja.render("does_not_exist", sample_context())


def test_check_catches_an_unguarded_optional_link(tmp_path: Path) -> None:
    write_message(tmp_path, "unguarded", "アンケート:{{ survey_url }}\n")

    with pytest.raises(TemplateProblem, match="guard"):
        MessageTemplates(tmp_path).check("unguarded")


# --- the sandbox ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
        "{{ joiner.__init__.__globals__['os'].system('touch MARKER') }}",
        "{{ namespace.__init__.__globals__.__builtins__.open('MARKER', 'w') }}",
        "{{ '{0.__class__.__mro__}'.format('') }}",
        "{% set x = [] %}{{ x.append(1) }}",
        "{{ 'x' * 100000000 }}",
        "{{ 'x'.ljust(100000000) }}",
        "{{ '%100000000s' % 'x' }}",
        "{{ '{:>100000000}'.format('x') }}",
        "{{ 'x' | center(100000000) }}",
        "{{ 'ab' | indent(100000000, first=True) }}",
    ],
)
def test_template_injection_is_a_problem_and_never_runs(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    text = write_message(tmp_path, "evil", "ご案内\n" + payload.replace("MARKER", str(marker)) + "\n")

    with pytest.raises(TemplateProblem) as caught:
        MessageTemplates(tmp_path).render("evil", sample_context())

    assert not marker.exists()
    assert caught.value.path == text.resolve()
    assert caught.value.line == 2
    assert "sandbox" in caught.value.message or "SecurityError" in caught.value.message


def test_injection_through_context_values_is_not_evaluated(ja: MessageTemplates) -> None:
    context = sample_context()
    context["holder"]["name"] = "{{ cycler.__init__.__globals__ }}"

    msg = ja.render("checkin", context)

    assert "{{ cycler.__init__.__globals__ }} 様" in msg.text  # data stays data


# --- locale fallback -----------------------------------------------------------------------------------


def test_english_falls_back_to_japanese_when_a_message_has_no_english_version(
    en: MessageTemplates,
) -> None:
    assert not (TEMPLATES / "messages" / "en" / "mentor_intro").exists()

    msg = en.render("mentor_intro", sample_context())

    assert "メンター" in msg.subject
    assert msg.html is not None and 'lang="ja"' in msg.html


def test_english_uses_the_english_version_when_there_is_one(en: MessageTemplates) -> None:
    msg = en.render("checkin", sample_context())

    assert msg.html is not None and 'lang="en"' in msg.html
    assert "Thursday, April 1, 2027" in msg.text
    assert msg.parts["slack"] is not None
    actions = [b for b in msg.parts["slack"] if b["type"] == "actions"]
    assert actions[0]["elements"][0]["text"]["text"] == "Answer the survey"
    assert "opt out here" in msg.parts["slack"][-1]["elements"][0]["text"]  # the English footer


def test_a_regional_locale_falls_back_to_its_language(tmp_path: Path) -> None:
    write_message(tmp_path, "hello", "Hello", locale="en")
    write_message(tmp_path, "hello", "こんにちは", locale="ja")

    assert MessageTemplates(tmp_path, "en-US").render("hello", sample_context()).text == "Hello\n"
    assert MessageTemplates(tmp_path, "fr").render("hello", sample_context()).text == "こんにちは\n"
    assert MessageTemplates(tmp_path, "fr").names() == ["hello"]


# --- channel payloads ----------------------------------------------------------------------------------


def test_the_slack_short_form_is_one_section_and_the_survey_button(ja: MessageTemplates) -> None:
    context = sample_context()
    blocks = ja.render("pulse_survey", context).parts["slack"]

    assert blocks is not None
    # no header (a chat message has no subject); the opt-out is a small context line at the end
    assert [b["type"] for b in blocks] == ["section", "actions", "context"]
    assert context["unsubscribe_url"] in blocks[-1]["elements"][0]["text"]
    assert blocks[0]["text"]["type"] == "mrkdwn" and blocks[0]["text"]["text"].startswith("山田様\n")
    assert "http" not in blocks[0]["text"]["text"]  # the button carries the link
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]
    assert [b["url"] for b in buttons] == [context["survey_url"]]


def test_default_slack_blocks_have_no_button_without_a_survey(ja: MessageTemplates) -> None:
    blocks = ja.render("checkin", {**sample_context(), "survey_url": None}).parts["slack"]

    assert blocks is not None and all(b["type"] != "actions" for b in blocks)


def test_default_slack_blocks_respect_slack_limits() -> None:
    blocks = default_slack_blocks("件" * 200, "あ<b>&\n" * 2000, "https://x.example/s/1")

    assert len(blocks[0]["text"]["text"]) <= 150
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(s) <= 3000 for s in sections)
    assert "<b>" not in "".join(sections) and "&lt;b&gt;&amp;" in sections[0]
    assert len(blocks) <= 50


def test_the_line_short_form_is_one_bubble_and_a_survey_button(ja: MessageTemplates) -> None:
    context = sample_context()
    messages = ja.render("monthly_update", context).parts["line"]

    assert messages is not None and len(messages) == 2
    assert messages[0]["type"] == "text" and messages[0]["text"].startswith("山田様\n")
    assert "山田 花子 様" not in messages[0]["text"] and "――" not in messages[0]["text"]
    assert context["survey_url"] not in messages[0]["text"]
    assert messages[1]["template"]["type"] == "buttons"
    assert messages[1]["template"]["actions"][0]["uri"] == context["survey_url"]
    assert len(messages[1]["template"]["text"]) <= 160 and len(messages[1]["altText"]) <= 400


def test_line_text_never_exceeds_5000_characters() -> None:
    messages = default_line_messages("件名", "長" * 12000, None)

    assert len(messages) == 1
    assert len(messages[0]["text"]) == LINE_TEXT_LIMIT
    assert messages[0]["text"].endswith("…")


def test_json_templates_override_the_defaults_and_embed_strings_safely(tmp_path: Path) -> None:
    write_message(tmp_path, "custom", '本文 "引用" と \\ バックスラッシュ')
    folder = tmp_path / "messages" / "ja" / "custom"
    (folder / "slack.json.j2").write_text(
        '[{"type": "section", "text": {"type": "mrkdwn", "text": {{ rendered.text | tojson }}}}]',
        encoding="utf-8",
    )
    (folder / "line.json.j2").write_text(
        '{"messages": [{"type": "text", "text": {{ (holder.name ~ "\\n" ~ rendered.text) | tojson }}}]}',
        encoding="utf-8",
    )

    msg = MessageTemplates(tmp_path).render("custom", sample_context())

    assert msg.parts["slack"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": '本文 "引用" と \\ バックスラッシュ\n'}}
    ]
    assert msg.parts["line"] is not None and msg.parts["line"][0]["text"].startswith("山田 花子\n本文")


def test_a_json_template_that_is_not_json_is_a_problem(tmp_path: Path) -> None:
    write_message(tmp_path, "badjson", "本文")
    (tmp_path / "messages" / "ja" / "badjson" / "slack.json.j2").write_text(
        '[{"type": "section", "text": "{{ rendered.text }}"}]',
        encoding="utf-8",  # no tojson: newline breaks it
    )

    with pytest.raises(TemplateProblem, match="tojson"):
        MessageTemplates(tmp_path).render("badjson", sample_context())


def test_a_line_json_template_over_the_length_limit_is_a_problem(tmp_path: Path) -> None:
    write_message(tmp_path, "long", "本文")
    (tmp_path / "messages" / "ja" / "long" / "line.json.j2").write_text(
        '[{"type": "text", "text": {{ ("あ" * 6000) | tojson }}}]', encoding="utf-8"
    )

    with pytest.raises(TemplateProblem, match="5000"):
        MessageTemplates(tmp_path).render("long", sample_context())


def test_rendered_payloads_are_json_serialisable(ja: MessageTemplates) -> None:
    for name in JA_NAMES:
        msg = ja.render(name, sample_context())
        json.dumps(msg.parts["slack"])
        json.dumps(msg.parts["line"])
        assert all("None" not in s for s in all_strings(msg.parts["line"]))


# --- filters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(2027, 4, 1), "2027年4月1日(木)"),
        (datetime(2026, 8, 20, 18, 0), "2026年8月20日(木)"),
        ("2026-12-28", "2026年12月28日(月)"),
    ],
)
def test_jdate_writes_dates_the_japanese_way(value: Any, expected: str) -> None:
    assert jdate(value) == expected


def test_jdatetime_shows_japan_time() -> None:
    utc = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)
    jst = datetime(2026, 8, 20, 18, 0, tzinfo=timezone(timedelta(hours=9)))

    assert jdatetime(utc) == jdatetime(jst) == "2026年8月20日(木) 18:00"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("山田 花子", "山田 花子 様"),
        ("  山田 花子 ", "山田 花子 様"),
        ("山田 花子 様", "山田 花子 様"),
        ("鈴木さん", "鈴木さん"),
    ],
)
def test_honorific_appends_sama_once(name: str, expected: str) -> None:
    assert honorific(name) == expected


def test_a_filter_given_the_wrong_type_is_a_problem_with_a_line(tmp_path: Path) -> None:
    write_message(tmp_path, "baddate", "ご案内\n{{ holder.name | jdate }}\n")

    with pytest.raises(TemplateProblem) as caught:
        MessageTemplates(tmp_path).render("baddate", sample_context())

    assert caught.value.line == 2 and "jdate" in caught.value.message
