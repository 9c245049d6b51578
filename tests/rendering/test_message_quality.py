"""Messages HR would send unchanged: no holes for sparse holders, no placeholders, config-driven content."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from followup.config import load_policy
from followup.config.loader import check_messages
from followup.config.messages import (
    HolderFacts,
    family_name,
    sample_contexts,
    sample_holders,
    template_context,
)
from followup.rendering.templates import MessageTemplates, TemplateProblem

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "followup.yaml"
TEMPLATES = REPO / "templates"


@pytest.fixture(scope="module")
def loaded():  # type: ignore[no-untyped-def]
    return load_policy(CONFIG)


@pytest.fixture(scope="module")
def ja() -> MessageTemplates:
    return MessageTemplates(TEMPLATES, "ja")


def context_for(loaded, template: str, holder: HolderFacts, **kw):  # type: ignore[no-untyped-def]
    defaults = {"send_day": date(2026, 8, 20), "phase_name": "steady", "phase_label": "安定期"}
    defaults.update(kw)
    return template_context(loaded.policy, holder, template=template, **defaults)


def test_check_config_finds_no_hole_in_any_template_for_any_sparse_holder(loaded) -> None:  # type: ignore[no-untyped-def]
    assert [str(p) for p in check_messages(loaded)] == []


@pytest.mark.parametrize("name", sorted(MessageTemplates(TEMPLATES, "ja").names()))
def test_every_template_reads_naturally_for_every_sparse_holder(
    loaded, ja: MessageTemplates, name: str
) -> None:  # type: ignore[no-untyped-def]
    event = {
        "zadankai_invite": "zadankai",
        "naiteishiki_guide": "naiteishiki",
        "konshinkai_invite": "konshinkai",
    }
    # every template an event plans (reminder, day before, thanks, follow-up) sees its event
    event.update({t.template: n for n, e in loaded.policy.events.items() for _, t in e.touches()})
    # a task reminder sees its task (提出物) and the holder's due date
    task = next((n for n, t in loaded.policy.tasks.items() if t.template == name), None)
    contexts = sample_contexts(loaded.policy, name, [("steady", "安定期", event.get(name))], task=task)
    labels = {label.split(",")[0] for label, _ in contexts}
    assert {"no mentor", "mentor missing from mentors:", "no department", "LINE only (no email)"} <= labels
    for label, context in contexts:
        assert ja.holes(name, context) == [], label
        text = ja.render(name, context).text
        for hole in ("氏名:\n", "近日中にから", "もちろん、へ", "メンターのへ", "()", "None"):
            assert hole not in text, (label, hole)


def write_message(root: Path, name: str, text: str, subject: str = "件名") -> None:
    folder = root / "messages" / "ja" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.j2").write_text(subject, encoding="utf-8")
    (folder / "text.j2").write_text(text, encoding="utf-8")


def test_an_empty_value_inside_a_sentence_fails_the_sparse_check(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # what the shipped templates did before: a department that renders as nothing
    write_message(
        tmp_path,
        "hole",
        "{{ holder.name | honorific }}\n\n"
        "{{ holder.department or '' }}では新しいプロジェクトが始まりました。\n",
    )
    templates = MessageTemplates(tmp_path)
    templates.render("hole", context_for(loaded, "hole", sample_holders(loaded.policy)[0][1]))  # renders fine

    with pytest.raises(TemplateProblem, match=r"〓では新しいプロジェクト.*no department"):
        templates.check_sparse("hole", sample_contexts(loaded.policy, "hole", []))


def test_empty_brackets_left_by_a_concatenation_are_holes(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_message(tmp_path, "brackets", "{{ '配属先(' ~ (holder.department or '') ~ ')へのご挨拶' }}\n")
    with pytest.raises(TemplateProblem, match=r"配属先\(\)へのご挨拶"):
        MessageTemplates(tmp_path).check_sparse("brackets", sample_contexts(loaded.policy, "brackets", []))


def test_a_message_saying_no_reply_is_needed_must_not_expect_one(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_message(tmp_path, "quiet", "{{ holder.name | honorific }}\n\nご返信は不要です。\n")
    with pytest.raises(TemplateProblem, match="expects_reply: false"):
        MessageTemplates(tmp_path).check_sparse("quiet", sample_contexts(loaded.policy, "quiet", []))
    (tmp_path / "messages" / "ja" / "quiet" / "meta.yaml").write_text("expects_reply: false\n")
    MessageTemplates(tmp_path).check_sparse("quiet", sample_contexts(loaded.policy, "quiet", []))


def test_unknown_meta_keys_are_refused(tmp_path: Path) -> None:
    write_message(tmp_path, "m", "本文\n")
    (tmp_path / "messages" / "ja" / "m" / "meta.yaml").write_text("expect_reply: false\n")
    with pytest.raises(TemplateProblem, match="unknown key"):
        MessageTemplates(tmp_path).meta("m")


def test_placeholder_text_is_refused_at_render_so_it_is_never_sent(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_message(
        tmp_path,
        "draft",
        "{{ holder.name | honorific }}\n\n今月は〇〇部で新しいプロジェクトが始まりました。\n",
    )
    with pytest.raises(TemplateProblem, match="placeholder text"):
        MessageTemplates(tmp_path).render(
            "draft", context_for(loaded, "draft", sample_holders(loaded.policy)[0][1])
        )


def test_body_text_says_family_name_sama_and_the_addressee_line_keeps_the_full_name(
    loaded, ja: MessageTemplates
) -> None:  # type: ignore[no-untyped-def]
    holder = sample_holders(loaded.policy)[0][1]
    text = ja.render("first_day_schedule", context_for(loaded, "first_day_schedule", holder)).text
    assert text.startswith("山田 花子 様\n")
    assert "山田様をお迎えできる日" in text and "山田 花子 様をお迎え" not in text
    assert (
        family_name("山田 花子") == "山田"
        and family_name("山田　花子") == "山田"
        and family_name("佐藤健") == "佐藤健"
    )


def test_the_mentor_department_comes_from_config_not_from_the_holder(loaded, ja: MessageTemplates) -> None:  # type: ignore[no-untyped-def]
    holder = replace(
        sample_holders(loaded.policy)[0][1], mentor_email="kobayashi.m@example.co.jp", department="営業部"
    )
    text = ja.render("mentor_intro", context_for(loaded, "mentor_intro", holder)).text
    assert "氏名:小林 美咲" in text and "所属:開発部" in text and "所属:営業部" not in text


def test_a_holder_without_a_mentor_gets_a_mentor_intro_that_says_one_is_coming(
    loaded, ja: MessageTemplates
) -> None:  # type: ignore[no-untyped-def]
    holder = replace(sample_holders(loaded.policy)[0][1], mentor_email="unknown@example.co.jp")
    msg = ja.render("mentor_intro", context_for(loaded, "mentor_intro", holder))
    assert msg.subject.endswith("メンター制度のご案内")
    assert "決まり次第あらためてご紹介いたします" in msg.text and "氏名:" not in msg.text


def test_the_monthly_update_shows_the_content_entry_of_its_month(loaded, ja: MessageTemplates) -> None:  # type: ignore[no-untyped-def]
    holder = sample_holders(loaded.policy)[0][1]
    july = ja.render(
        "monthly_update", context_for(loaded, "monthly_update", holder, send_day=date(2026, 7, 10))
    )
    august = ja.render(
        "monthly_update", context_for(loaded, "monthly_update", holder, send_day=date(2026, 8, 20))
    )
    assert "7月の社内の近況" in july.subject and "フットサル部" in july.text
    assert (
        "8月の社内の近況" in august.subject
        and "夏季休業" in august.text
        and "フットサル部" not in august.text
    )
    assert "今月のトピック" not in july.text and "新しいプロジェクト" not in july.text


def test_a_month_without_content_gets_a_short_note_and_no_invented_topics(
    loaded, ja: MessageTemplates
) -> None:  # type: ignore[no-untyped-def]
    holder = sample_holders(loaded.policy)[0][1]
    msg = ja.render(
        "monthly_update", context_for(loaded, "monthly_update", holder, send_day=date(2028, 7, 10))
    )
    assert msg.subject == "【株式会社サンプル】ご入社までのご連絡"
    assert (
        "社内の話題" not in msg.text and "新しいプロジェクト" not in msg.text and "トピック" not in msg.text
    )
    assert (
        ja.holes("monthly_update", context_for(loaded, "monthly_update", holder, send_day=date(2028, 7, 10)))
        == []
    )


def test_check_config_refuses_a_content_template_without_content(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config" / "followup.yaml"
    config.parent.mkdir()
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    text = CONFIG.read_text(encoding="utf-8")
    start = text.index("content:")
    end = text.index("\nevents:")
    config.write_text(text[:start] + text[end:], encoding="utf-8")
    meta = tmp_path / "templates" / "messages" / "ja" / "monthly_update" / "meta.yaml"
    meta.write_text("needs_content: true\nexpects_reply: false\n", encoding="utf-8")
    problems = check_messages(load_policy(config))
    assert any("monthly_update" in str(p) and "content:" in str(p) for p in problems)


def test_a_placeholder_in_the_content_entries_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config" / "followup.yaml"
    config.parent.mkdir()
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    text = CONFIG.read_text(encoding="utf-8").replace("大阪支社が梅田", "〇〇支社が梅田", 1)
    config.write_text(text, encoding="utf-8")
    from followup.errors import ConfigError

    with pytest.raises(ConfigError, match="placeholder"):
        load_policy(config)


def test_first_day_schedule_reads_place_time_and_dress_code_from_config(loaded, ja: MessageTemplates) -> None:  # type: ignore[no-untyped-def]
    holder = sample_holders(loaded.policy)[0][1]
    context = context_for(loaded, "first_day_schedule", holder, phase_name="pre_start")
    context["first_day"] = {
        **context["first_day"],
        "place": "大阪支社 3階 会議室A",
        "time": "10:00",
        "dress_code": "私服でお越しください",
    }
    text = ja.render("first_day_schedule", context).text
    assert "2027年4月1日(木) 10:00までにお越しください" in text
    assert "大阪支社 3階 会議室A" in text and "私服でお越しください" in text
    assert "本社1階" not in text and "スーツ" not in text


def test_a_mid_career_first_day_uses_the_track_override(loaded, ja: MessageTemplates) -> None:  # type: ignore[no-untyped-def]
    holder = next(h for label, h in sample_holders(loaded.policy) if h.track == "mid_career")
    text = ja.render(
        "first_day_schedule", context_for(loaded, "first_day_schedule", holder, send_day=date(2026, 9, 24))
    ).text
    assert "9:30までにお越しください" in text and "入社式" not in text and "普段のビジネスの服装" in text
    assert "佐藤健様をお迎え" in text


def test_a_signed_link_with_xx_in_its_token_is_not_placeholder_text() -> None:
    """Tokens are random: ``…XX…`` inside a URL is not HR's ××, but ×× in the text still is."""
    from followup.rendering.quality import find_placeholders

    assert find_placeholders("こちらから: https://followup.example.jp/s/eyJzIjoiXXabc.aw_R.9XXk\n") == []
    assert find_placeholders('<a href="https://followup.example.jp/s/abXXcd">回答する</a>') == []
    assert find_placeholders("今月のトピック: XX について") != []
