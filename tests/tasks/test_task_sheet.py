"""The pure 提出状況 pieces: status words HR writes, counts, lateness from the business day after the due
date, the table the CSV is made of, and the task named in a touch key."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from followup.tasks.sheet import TaskRow, counts, overdue, parse_status, table, task_of


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("提出済", "submitted"),
        ("提出済み", "submitted"),
        ("確認済", "confirmed"),
        ("対象外", "exempt"),
        ("未提出", "pending"),
        (" submitted ", "submitted"),
        ("受講済", "submitted"),
    ],
)
def test_status_words_in_japanese_and_english(word: str, status: str) -> None:
    assert parse_status(word) == status


def test_an_unknown_status_word_is_refused_in_japanese() -> None:
    with pytest.raises(ValueError, match="未提出・提出済・確認済・対象外"):
        parse_status("もらった")


def row(
    ext: str, status: str, due: date | None = date(2027, 2, 12), late: date | None = date(2027, 2, 15)
) -> TaskRow:
    return TaskRow(1, ext, "山田 花子", "営業部", due, status, None, "", "", late)


def test_late_from_the_business_day_after_not_on_the_weekend() -> None:
    rows = [row("A", "pending"), row("B", "submitted"), row("C", "exempt"), row("D", "pending", None, None)]
    assert overdue(rows, date(2027, 2, 12)) == []  # the due day (金)
    assert overdue(rows, date(2027, 2, 14)) == []  # the weekend after it
    assert [r.external_id for r in overdue(rows, date(2027, 2, 15))] == ["A"]
    assert counts(rows) == {"pending": 2, "submitted": 1, "confirmed": 0, "exempt": 1}


def test_the_table_has_japanese_headers_and_words() -> None:
    marked = TaskRow(
        1,
        "NG-1",
        "山田 花子",
        "営業部",
        date(2027, 2, 18),
        "confirmed",
        datetime(2027, 2, 16, 6, 0, tzinfo=UTC),
        "suzuki",
        "原本受領",
    )
    lines = table([marked], ZoneInfo("Asia/Tokyo"))
    assert lines == [
        ["内定者ID", "氏名", "部署", "期限", "状況", "更新日時", "更新者", "メモ"],
        ["NG-1", "山田 花子", "営業部", "2027-02-18", "確認済", "2027-02-16 15:00", "suzuki", "原本受領"],
    ]


def test_the_task_of_a_touch_key() -> None:
    assert task_of("NG:2027:001:new_grad:task:guarantee:-1bd") == "guarantee"
    assert task_of("NG-1:new_grad:event:konshinkai:reminder") is None
    assert task_of("NG-1:new_grad:initial:3") is None
