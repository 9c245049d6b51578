"""The Japanese words HR sees for statuses, rules, severities and timeline entries — one place, so
the CLI, the dashboard, the report and the demo never call the same thing by two names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime

from followup.channels import CHANNELS, channel_class
from followup.vocab import WEEKDAYS_JA


def short_date(value: date | datetime) -> str:
    """``11/25(水)``: how HR writes a date in a table or a memo (the year is clear from context)."""
    day = value.date() if isinstance(value, datetime) else value
    return f"{day.month}/{day.day}({WEEKDAYS_JA[day.weekday()]})"


def short_datetime(value: datetime) -> str:
    """``11/25(水) 10:00`` (``value`` already in the organisation's time zone)."""
    return f"{short_date(value)} {value:%H:%M}"


STATUS_LABELS: dict[str, str] = {
    "offered": "内定(承諾前)",
    "accepted": "内定承諾",
    "joined": "入社済み",
    "declined": "辞退",
    "withdrawn": "内定取消",
    "rejected": "不採用",
}
# a holder's lifecycle entries (HolderChange.field) as the timeline names them
CHANGE_FIELD_LABELS: dict[str, str] = {
    "created": "登録",
    "status": "ステータス",
    "start_date": "入社予定日",
    "offer_date": "内定日",
    "accepted_date": "承諾日",
    "acceptance_deadline": "承諾期限",
    "rejected_date": "不採用日",
    "left_date": "退職日",
    "paused_until": "自動連絡の一時停止(この日まで)",
    "mentor_email": "メンター",
    "department": "部署",
    "track": "採用区分",
    "name": "氏名",
    "name_kana": "フリガナ",
    "email": "メールアドレス",
    "phone": "電話番号",
    "line_user_id": "LINE",
    "slack_user_id": "Slack",
    "timezone": "タイムゾーン",
}
SEVERITY_LABELS: dict[str, str] = {"low": "低", "medium": "中", "high": "高"}
RULE_LABELS: dict[str, str] = {
    "neglected": "放置",
    "over_contacted": "過剰連絡",
    "low_pulse": "パルス低下",
    "pulse_drop": "パルス急落",
    "unresponsive": "無反応",
    "declining_signal": "辞退の兆候",
    "unreachable": "連絡不可",
    "no_cadence": "ケイデンスなし",
    "no_rsvp": "出欠未回答",
    "acceptance_pending": "承諾待ち",
    "event_absent": "行事の欠席",
    "task_overdue": "提出物の期限切れ",
    "manual_overdue": "個別フォロー未実施",
    "cohort_not_joined": "交流チャンネル未参加",
}
TIMELINE_LABELS: dict[str, str] = {
    "touch": "連絡",
    "answer": "回答",
    "reply": "返信",
    "button": "ボタン回答",
    "open": "開封",
    "change": "変更",
    "flag": "フラグ",
    "opt_out": "配信停止",
    "follow": "友だち追加",
    "unfollow": "ブロック",
    "rsvp": "出欠回答",
    "attendance": "出欠記録",
    "flag_action": "フラグ対応",
    "task": "提出物",
}
FLAG_ACTION_LABELS: dict[str, str] = {"acknowledge": "確認", "assign": "担当割当", "resolve": "解決"}
RSVP_LABELS: dict[str, str] = {
    "attending": "出席",
    "declined": "欠席",
    "maybe": "未定",
    "waitlisted": "キャンセル待ち",
    "": "未回答",
}
ATTENDANCE_LABELS: dict[str, str] = {"attended": "出席", "absent": "欠席", "": "未記録"}
TASK_STATUS_LABELS: dict[str, str] = {
    "pending": "未提出",
    "submitted": "提出済",
    "confirmed": "確認済",
    "exempt": "対象外",
}
MANUAL_CHANNEL_LABELS: dict[str, str] = {
    "phone": "電話",
    "letter": "手紙",
    "meeting": "面談",
    "other": "その他",
}


class _ChannelLabels(Mapping[str, str]):
    """Every channel's label: the registered channels' own ``label`` (read live), then the manual ones."""

    def __getitem__(self, name: str) -> str:
        if name in CHANNELS:
            return channel_class(name).label
        return MANUAL_CHANNEL_LABELS[name]

    def __iter__(self) -> Iterator[str]:
        return iter((*CHANNELS, *MANUAL_CHANNEL_LABELS))

    def __len__(self) -> int:
        return len(CHANNELS) + len(MANUAL_CHANNEL_LABELS)


CHANNEL_LABELS: Mapping[str, str] = _ChannelLabels()

TRACK_LABELS: dict[str, str] = {"new_grad": "新卒", "mid_career": "中途"}
TOUCH_STATUS_LABELS: dict[str, str] = {
    "planned": "予定",
    "sending": "送信中",
    "sent": "送信済み",
    "failed": "失敗",
    "cancelled": "取りやめ",
    "reminded": "担当者に依頼済み",
    "done": "実施済み",
}
KIND_LABELS: dict[str, str] = {
    "message": "メッセージ",
    "survey": "アンケート",
    "manual": "手動",
    "escalation": "再依頼",
}
# what a manual touch asks the assignee to do, as a reminder or the report names it
MANUAL_WHAT: dict[str, str] = {"phone": "お電話", "letter": "お手紙", "meeting": "面談"}


def label(table: Mapping[str, str], key: str | None) -> str:
    """The Japanese label, or the key itself for a value HR defined (a custom track or phase)."""
    return table.get(key or "", key or "")
