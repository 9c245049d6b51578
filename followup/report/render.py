"""The weekly report as HTML (CSS inlined for Gmail and Outlook), plain text, and a MIME email.

Email structure (what mail clients expect for inline images)::

    multipart/alternative
    ├── text/plain
    └── multipart/related
        ├── text/html            (<img src="cid:...">)
        └── image/png × charts   (Content-ID, inline)

The ``--out`` file gets the same HTML with the charts as ``data:`` URIs so it opens on its own.
"""

from __future__ import annotations

import base64
import logging
from datetime import date, datetime, timedelta
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, cast

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from premailer import Premailer

from followup.channels.email import EmailPolicy
from followup.config.schema import Policy
from followup.labels import TRACK_LABELS, short_date
from followup.report.data import WeeklyReport

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _day(moment: datetime) -> str:
    return f"{moment.year}/{moment.month}/{moment.day}"


def _minute(moment: datetime) -> str:
    return f"{_day(moment)} {moment:%H:%M}"


def week_range(week: str) -> str:
    """``2026-W49`` → ``11/30(月)〜12/6(日)``: the Monday to Sunday of the ISO week the report names."""
    year, number = week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    return f"{short_date(monday)}〜{short_date(monday + timedelta(days=6))}"


def _short_minute(moment: datetime) -> str:
    return f"{short_date(moment)} {moment.hour}:{moment:%M}"


def track_rows(report: WeeklyReport) -> list[tuple[str, list[int], int]]:
    """(新卒/中途/…, counts per status in report order, total): the status table split by track."""
    tracks = sorted({t for t, _ in report.status_by_track}, key=lambda t: (t not in TRACK_LABELS, t))
    rows = []
    for track in tracks:
        counts = [report.status_by_track.get((track, status), 0) for status, _, _ in report.status_counts]
        rows.append((TRACK_LABELS.get(track, track), counts, sum(counts)))
    return rows


def _environment(templates_root: Path | None) -> Environment:
    root = (templates_root or DEFAULT_TEMPLATES) / "report"
    env = ImmutableSandboxedEnvironment(  # HR may edit these templates too
        loader=FileSystemLoader(root),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=_pct, day=_day, minute=_minute, week_range=week_range, short_minute=_short_minute)
    env.globals["track_rows"] = track_rows
    return env


def render_html(
    report: WeeklyReport,
    *,
    images: Literal["data", "cid"] = "data",
    templates_root: Path | None = None,
) -> str:
    """HTML with CSS inlined; charts as ``data:`` URIs (a file) or ``cid:`` references (the email)."""
    if images == "cid":
        sources = {chart.name: f"cid:{chart.cid(report.week)}" for chart in report.charts}
    else:
        sources = {
            chart.name: "data:image/png;base64," + base64.b64encode(chart.png).decode("ascii")
            for chart in report.charts
        }
    html = _environment(templates_root).get_template("weekly.html.j2").render(report=report, images=sources)
    inliner = Premailer(
        html,
        keep_style_tags=False,
        remove_classes=False,
        strip_important=False,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    )
    return str(inliner.transform(pretty_print=False))


def render_text(report: WeeklyReport, *, templates_root: Path | None = None) -> str:
    """The plain-text part: the same content for clients (and people) that do not show HTML."""
    return _environment(templates_root).get_template("weekly.txt.j2").render(report=report, images={})


def build_email(report: WeeklyReport, policy: Policy, *, templates_root: Path | None = None) -> EmailMessage:
    """The report as one MIME message to the HR addresses of ``report.weekly.to``; pure (no clock:
    the Date header is the report's ``now``)."""
    sender = policy.channels.of(EmailPolicy)
    msg = EmailMessage(policy=email_policy.SMTP)
    msg["From"] = Address(display_name=sender.sender_name, addr_spec=sender.sender)
    msg["To"] = ", ".join(policy.report.weekly.to)
    msg["Subject"] = f"{report.subject}({report.week})"
    msg["Date"] = format_datetime(report.now)
    domain = sender.sender.rpartition("@")[2] or "followup"
    msg["Message-ID"] = f"<weekly-report.{report.week}@{domain}>"
    msg.set_content(render_text(report, templates_root=templates_root), charset="utf-8")
    msg.add_alternative(
        render_html(report, images="cid", templates_root=templates_root), subtype="html", charset="utf-8"
    )
    html_part = cast(EmailMessage, msg.get_payload()[1])  # type: ignore[index]
    for chart in report.charts:
        html_part.add_related(
            chart.png,
            maintype="image",
            subtype="png",
            cid=f"<{chart.cid(report.week)}>",
            filename=f"{chart.name}.png",
            disposition="inline",
        )
    # fixed boundaries keep the message a pure function of the report (no random MIME markers)
    msg.set_boundary(f"followup-report-{report.week}-alternative")
    html_part.set_boundary(f"followup-report-{report.week}-related")
    return msg
