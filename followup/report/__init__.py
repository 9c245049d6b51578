"""The weekly at-risk report: data (``build_report``), HTML/text/email rendering and sending."""

from followup.report.data import WeeklyReport, build_report, iso_week, workspace_url
from followup.report.render import build_email, render_html, render_text
from followup.report.send import (
    message_titles,
    report_due_at,
    send_weekly_report,
    send_weekly_report_if_due,
    weekly_report,
)

__all__ = [
    "WeeklyReport",
    "build_email",
    "build_report",
    "iso_week",
    "message_titles",
    "render_html",
    "render_text",
    "report_due_at",
    "send_weekly_report",
    "send_weekly_report_if_due",
    "weekly_report",
    "workspace_url",
]
