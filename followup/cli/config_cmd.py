"""``followup check-config``: validate the policy and say what was understood."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from followup.errors import ConfigError

if TYPE_CHECKING:
    from followup.config import Policy
    from followup.config.context import AppContext


out = Console()
err = Console(stderr=True, soft_wrap=True)


def event_plan(policy: Policy) -> dict[str, dict[str, object]]:
    """Each event's touches as HR reads them: which template, on which day, to whom, until when."""
    from followup.calendar import BusinessCalendar

    calendar = BusinessCalendar.from_policy(policy)
    plans: dict[str, dict[str, object]] = {}
    for name, event in policy.events.items():
        audience = event.audience.model_dump(exclude_defaults=True) if event.audience else {}
        touches = {}
        for kind, touch in event.touches():
            dates = {"deadline": event.deadline, "event": event.starts_at.date()}
            nominal = event.anchor(kind).resolve(dates, calendar.is_business_day)
            day = calendar.next_business_day(nominal) if nominal is not None else None
            touches[kind] = {
                "template": touch.template,
                "at": str(event.anchor(kind)),
                "date": day.isoformat() if day else None,
                "latest": event.latest(kind).isoformat(),
            }
        plans[name] = {
            "title": event.title,
            "starts_at": event.starts_at.isoformat(),
            "deadline": event.deadline.isoformat() if event.deadline else None,
            "audience": audience or "all followed holders",
            "touches": touches,
        }
    return plans


GATE_WORDS = {  # who of the audience an event touch goes to (EVENT_TOUCH_GATES)
    "reminder": "のうち未回答・未定の方",
    "day_before": "のうち出席と回答した方",
    "thanks": "のうち当日の出席を記録した方",
    "follow_up": "のうち欠席の方(欠席と回答、または当日欠席)",
}


def _audience_words(audience: object) -> str:
    if not isinstance(audience, dict) or not audience:
        return "ケイデンスの対象者全員"
    words = {"tracks": "採用区分", "departments": "部署"}
    return "・".join(f"{words.get(k, k)} {'/'.join(v)}" for k, v in audience.items()) + " の内定者"


def summarize(policy: Policy) -> dict[str, object]:
    """The policy as HR would describe it: cadences, phases, intervals, surveys, events, report."""
    return {
        "organization": policy.organization.name,
        "timezone": policy.organization.timezone,
        "locale": policy.organization.locale,
        "send_window": f"{policy.calendar.send_window.start:%H:%M}-{policy.calendar.send_window.end:%H:%M}",
        "cadences": {
            name: {
                "applies_to": cadence.applies_to.model_dump(),
                "phases": [
                    {
                        "name": phase.name,
                        "label": phase.label,
                        "from": str(phase.start),
                        "to": str(phase.end),
                        "every": str(phase.every),
                        "channels": list(phase.channels),
                        "templates": [
                            ref.template + (" (once)" if ref.once else "") for ref in phase.templates
                        ],
                        "survey": f"{phase.survey.form} every {phase.survey.every} touches"
                        if phase.survey
                        else None,
                        "one_off": [f"{o.name} at {o.at} ({o.kind}/{o.channel})" for o in phase.one_off],
                    }
                    for phase in cadence.phases
                ],
            }
            for name, cadence in policy.cadences.items()
        },
        "events": event_plan(policy),
        "tasks": {
            name: {
                "title": task.title,
                "kind": task.kind,
                "due": str(task.due),
                "remind": [str(r) for r in task.remind],
                "template": task.template,
                "audience": task.audience.model_dump(exclude_defaults=True) if task.audience else None,
            }
            for name, task in policy.tasks.items()
        },
        "surveys": {name: len(survey.questions) for name, survey in policy.surveys.items()},
        "report": f"{policy.report.weekly.day} {policy.report.weekly.time:%H:%M} to "
        + ", ".join(policy.report.weekly.to),
    }


def register(app: typer.Typer) -> None:
    @app.command("check-config")
    def check_config(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Validate the policy YAML and every template it names; print what was understood.

        Every template is rendered against sparse sample holders (no mentor, a mentor missing from
        mentors:, no department, LINE only, mid-career, an October start): an empty value inside a
        sentence, placeholder text or a missing monthly content entry is an error. A template sent on
        LINE or Slack needs its short form (short.j2) within each channel's limits.

        Errors are printed as FILE:LINE:COL: message, and the exit status is 2.
        """
        from followup.config.loader import check_messages

        context: AppContext = ctx.obj
        policy = context.policy
        problems = check_messages(context.loaded)
        if problems:
            raise ConfigError(problems)
        summary = summarize(policy)
        if as_json:
            out.print_json(json.dumps(summary, ensure_ascii=False))
            return
        out.print(
            "[green]OK[/] "
            + escape(
                f"{context.config_file}: {policy.organization.name} "
                f"({policy.organization.timezone}, {policy.organization.locale}), "
                f"send window {summary['send_window']}"
            )
        )
        for name, cadence in policy.cadences.items():
            table = Table(
                title=escape(f"cadence {name} — {cadence.applies_to.model_dump(exclude_defaults=True)}")
            )
            for column in ("phase", "from", "to", "every", "channels", "templates", "survey", "one-off"):
                table.add_column(column)
            for phase in cadence.phases:
                table.add_row(
                    *(
                        escape(cell)
                        for cell in (
                            f"{phase.name} {phase.label}",
                            str(phase.start),
                            str(phase.end),
                            str(phase.every),
                            " > ".join(phase.channels),
                            str(len(phase.templates)),
                            f"{phase.survey.form}/{phase.survey.every}" if phase.survey else "-",
                            ", ".join(o.name for o in phase.one_off) or "-",
                        )
                    )
                )
            out.print(table)
        for name, plan in summary["events"].items():  # type: ignore[attr-defined]
            for kind, touch in plan["touches"].items():
                audience = plan["audience"]
                who = _audience_words(audience)
                gate = GATE_WORDS.get(kind, "")
                later = "それ以降の内定者には内定日に、" if kind == "invitation" else ""
                out.print(
                    f"event {name} {plan['title']} ({plan['starts_at'][:10]}): {kind} "
                    f"{touch['template']} を {touch['date']} ({touch['at']}) に {who}{gate} へ。"
                    f"{later}{'締切 ' if kind in ('invitation', 'reminder') else ''}{touch['latest']} まで"
                    " (never later)",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        for name, task in summary["tasks"].items():  # type: ignore[attr-defined]
            remind = "・".join(task["remind"]) or "なし"
            out.print(
                f"task {name} {task['title']}: 期限 {task['due']}、リマインド {remind} (期限から) "
                f"{task['template']} を {_audience_words(task['audience'])}のうち未提出の方へ",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        for warning in context.loaded.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
        surveys = ", ".join(f"{name} ({len(s.questions)} questions)" for name, s in policy.surveys.items())
        out.print(f"surveys: {surveys}", markup=False)
        out.print(f"weekly report: {summary['report']}", markup=False)
