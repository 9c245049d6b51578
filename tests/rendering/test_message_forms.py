"""The short form per channel: every template, for every sparse sample holder, renders a real chat message
(a few lines, one button, inside each channel's declared limits, no holes); the email stays the letter;
check-config refuses a missing or oversized short form, naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from followup.channels import channel_class, channel_classes
from followup.channels.base import Channel, OutboundMessage
from followup.config.loader import check_messages, load_policy
from followup.config.messages import sample_contexts
from followup.errors import ConfigError
from followup.rendering.forms import ShortForm, parse_short, short_problem
from followup.rendering.templates import MessageTemplates, TemplateProblem, sample_context

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
CONFIG = REPO / "config" / "followup.yaml"
CHAT = [c for c in channel_classes() if c.short_form]
EMAIL = channel_class("email")
LINE = channel_class("line")
SLACK = channel_class("slack")
URL_PREFIXES = ("http://", "https://")


POLICY = load_policy(CONFIG).policy


def _uses() -> dict[str, list[tuple[str, str, str | None]]]:
    """Each template of the example policy with the (phase, label, event) it is sent in."""
    policy = POLICY
    uses: dict[str, list[tuple[str, str, str | None]]] = {}
    for cadence in policy.cadences.values():
        for phase in cadence.phases:
            names = [ref.template for ref in phase.templates]
            names += [o.template for o in phase.one_off if o.template]
            if phase.survey is not None and phase.survey.template:
                names.append(phase.survey.template)
            for name in names:
                entry = (phase.name, phase.label, None)
                if entry not in uses.setdefault(name, []):
                    uses[name].append(entry)
    for event_name, event in policy.events.items():
        for _kind, touch in event.touches():
            uses.setdefault(touch.template, []).append(("event", str(event.title), event_name))
    return uses


USES = _uses()
NAMES = sorted(USES)


def _all_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _all_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _all_strings(v)]
    return []


def _bubble_texts(channel: type[Channel], parts: list[dict[str, Any]]) -> list[str]:
    """The text a person reads in the chat (LINE text bubbles, Slack sections), not button URLs."""
    if channel is LINE:
        return [p["text"] for p in parts if p["type"] == "text"]
    return [p["text"]["text"] for p in parts if p["type"] == "section"]


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize("name", NAMES)
def test_every_template_renders_for_every_channel_and_sparse_holder_within_limits(
    name: str, locale: str
) -> None:
    templates = MessageTemplates(TEMPLATES, locale)
    contexts = sample_contexts(POLICY, name, USES[name])
    assert len(contexts) >= 14  # seven sample holders, with and without a survey link
    for label, context in contexts:
        rendered = templates.render(name, context)
        assert templates.holes(name, context) == [], label
        # email: the whole letter, untouched
        assert EMAIL.fit(_message(rendered.text_for(EMAIL), None, "email")).text == rendered.text
        assert rendered.short is not None
        for channel in CHAT:
            text = rendered.text_for(channel)
            assert text == rendered.short and len(text) < len(rendered.text), (label, channel.name)
            lines = [line for line in text.splitlines() if line.strip()]
            assert 2 <= len(lines) <= channel.short_max_lines, (label, channel.name, lines)
            assert len(text.strip()) <= channel.short_max_length, (label, channel.name)
            if locale == "ja":
                assert lines[0] == f"{context['holder']['family_name']}様", label  # 「山田様」
            assert "――" not in text and not any(p in text for p in URL_PREFIXES), (label, text)
            parts = rendered.parts[channel.name]
            assert parts, (label, channel.name)
            payload = channel.build_payload(_message(text, parts, channel.name))
            json.dumps(payload, ensure_ascii=False)
            assert all("None" not in s for s in _all_strings(payload)), (label, channel.name)
            bubbles = _bubble_texts(channel, parts)
            assert len(bubbles) == 1 and not any(p in bubbles[0] for p in URL_PREFIXES), (label, bubbles)
            if context["survey_url"]:
                assert rendered.link is not None and rendered.link.url == context["survey_url"], label
            if rendered.link is not None:
                assert len(rendered.link.label) <= channel.link_label_limit
                assert rendered.link.url in json.dumps(parts, ensure_ascii=False)  # the button carries it


def _message(text: str, parts: list[dict[str, Any]] | None, channel: str) -> OutboundMessage:
    return OutboundMessage("K:1", channel, "U1", "件名", text, parts=parts)


def test_the_example_config_passes_check_config_with_every_short_form() -> None:
    assert problems_of(CONFIG) == []


def problems_of(config: Path) -> list[str]:
    """What check-config reports: the load-time checks, then the sparse-holder checks."""
    try:
        loaded = load_policy(config)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in check_messages(loaded)]


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    config = tmp_path / "followup.yaml"
    text = CONFIG.read_text(encoding="utf-8")
    config.write_text(text.replace("templates_dir: ../templates", f"templates_dir: {templates}"), "utf-8")
    return templates, config


def test_check_config_refuses_a_template_without_a_short_form_naming_the_file(tmp_path: Path) -> None:
    templates, config = _copy(tmp_path)
    (templates / "messages" / "ja" / "checkin" / "short.j2").unlink()

    problems = problems_of(config)

    assert len(problems) == 1, problems
    assert f"{config}:" in problems[0]  # the YAML line that uses it
    assert str(templates / "messages" / "ja" / "checkin" / "short.j2") in problems[0]
    assert "short.j2 is missing" in problems[0]


def test_a_template_sent_only_by_email_needs_no_short_form(tmp_path: Path) -> None:
    templates, config = _copy(tmp_path)
    (templates / "messages" / "ja" / "checkin" / "short.j2").unlink()
    text = config.read_text(encoding="utf-8")
    for order in ("[line, email, slack]", "[email, line, slack]", "[email, slack, line]"):
        text = text.replace(f"channels: {order}", "channels: [email]")
    config.write_text(text, encoding="utf-8")

    assert problems_of(config) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("お手数ですが、よろしくお願いいたします。\n" * 6, "lines"),
        ("あ" * 320 + "\n", "characters"),
        ("詳細はこちら https://example.co.jp/events/zadankai\n", "web address"),
        ("――――――――――\n", "rule line"),
        (  # (a touch with a survey link carries the survey button instead)
            "{% if not survey_url %}\n[これはとても長いボタンの文字でLINEには収まりません](https://example.co.jp/x)\n"
            "{% endif %}\n",
            "button",
        ),
    ],
)
def test_check_config_refuses_a_short_form_over_a_channel_limit(
    tmp_path: Path, extra: str, message: str
) -> None:
    templates, config = _copy(tmp_path)
    short = templates / "messages" / "ja" / "welcome_president" / "short.j2"
    survey = "{% if survey_url %}\n[アンケートに回答する]({{ survey_url }})\n{% endif %}\n"
    short.write_text("{{ holder.family_name }}様\nご連絡いたします。\n" + extra + survey, encoding="utf-8")

    problems = problems_of(config)

    assert problems and all(str(short) in p for p in problems), problems
    assert message in problems[0], problems[0]
    assert "LINE:" in problems[0] or "Slack:" in problems[0]


def test_check_config_refuses_a_short_form_that_drops_the_survey_button(tmp_path: Path) -> None:
    templates, config = _copy(tmp_path)
    short = templates / "messages" / "ja" / "checkin" / "short.j2"
    short.write_text("{{ holder.family_name }}様\nその後お変わりございませんか。\n", encoding="utf-8")

    problems = problems_of(config)

    assert problems and "survey" in problems[0] and str(short) in problems[0]


def test_check_config_finds_a_hole_in_a_short_form(tmp_path: Path) -> None:
    templates, config = _copy(tmp_path)
    short = templates / "messages" / "ja" / "welcome_president" / "short.j2"
    short.write_text(
        "{{ holder.family_name }}様\n{{ holder.department }}でのご活躍を楽しみにしております。\n"
        "{% if survey_url %}\n[アンケートに回答する]({{ survey_url }})\n{% endif %}\n",
        encoding="utf-8",
    )

    problems = problems_of(config)

    assert problems and "〓でのご活躍" in problems[0] and "short.j2" in problems[0]


def test_a_chat_send_without_a_short_form_is_refused_not_given_the_email(tmp_path: Path) -> None:
    folder = tmp_path / "messages" / "ja" / "plain"
    folder.mkdir(parents=True)
    (folder / "subject.j2").write_text("件名", encoding="utf-8")
    (folder / "text.j2").write_text("長いメールの本文\n", encoding="utf-8")
    rendered = MessageTemplates(tmp_path).render("plain", sample_context())

    assert rendered.text_for(EMAIL) == "長いメールの本文\n"
    assert rendered.parts["line"] is None and rendered.parts["slack"] is None
    with pytest.raises(TemplateProblem, match=r"short\.j2 is missing: LINE") as caught:
        rendered.text_for(LINE)
    assert caught.value.path == folder / "short.j2"


def test_the_button_line_becomes_the_one_button_and_leaves_the_text() -> None:
    form = parse_short("山田様\n本文です。\n[出欠を回答する](https://x.example/e/1)\n")

    assert form == ShortForm("山田様\n本文です。\n", form.link)
    assert form.link is not None and (form.link.label, form.link.url) == (
        "出欠を回答する",
        "https://x.example/e/1",
    )
    assert short_problem(form, LINE, None) is None


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("山田様\n[一](https://a.example)\n[二](https://b.example)\n", "more than one button"),
        ("山田様\n[回答する](None)\n", "no web address"),
    ],
)
def test_a_short_form_with_two_buttons_or_an_empty_link_is_refused(raw: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_short(raw)


def test_each_channel_declares_its_own_short_form_limits() -> None:
    assert {c.name for c in CHAT} == {"line", "slack"}
    assert not EMAIL.short_form
    assert LINE.link_label_limit == 20 and SLACK.link_label_limit == 75
    long_label = ShortForm(
        "山田様\n本文です。\n", parse_short("x\n[" + "あ" * 30 + "](https://a.example)").link
    )
    assert short_problem(long_label, LINE, None) is not None  # LINE shows 20 characters on a button
    assert short_problem(long_label, SLACK, None) is None


def test_a_short_form_saying_no_reply_is_needed_must_not_expect_one(tmp_path: Path) -> None:
    folder = tmp_path / "messages" / "ja" / "quiet"
    folder.mkdir(parents=True)
    (folder / "subject.j2").write_text("件名", encoding="utf-8")
    (folder / "text.j2").write_text("{{ holder.name | honorific }}\n\nご連絡いたします。\n", encoding="utf-8")
    (folder / "short.j2").write_text(
        "{{ holder.family_name }}様\nご確認いただければ、ご返信は不要です。\n"
        "{% if survey_url %}\n[アンケートに回答する]({{ survey_url }})\n{% endif %}\n",
        encoding="utf-8",
    )
    contexts = sample_contexts(POLICY, "quiet", [])

    with pytest.raises(TemplateProblem, match="expects_reply: false"):
        MessageTemplates(tmp_path).check_sparse("quiet", contexts, CHAT)
    (folder / "meta.yaml").write_text("expects_reply: false\n", encoding="utf-8")
    MessageTemplates(tmp_path).check_sparse("quiet", contexts, CHAT)
