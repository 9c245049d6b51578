"""``followup check-config``: validate the policy and say what was understood."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from followup.config import Policy
from followup.config.context import AppContext
from followup.config.loader import check_messages
from followup.errors import ConfigError

out = Console()


def summarize(policy: Policy) -> dict[str, object]:
    """The policy as HR would describe it: cadences, phases, intervals, surveys, report."""
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
                        "templates": [ref.template for ref in phase.templates],
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
        sentence, placeholder text or a missing monthly content entry is an error.

        Errors are printed as FILE:LINE:COL: message, and the exit status is 2.
        """
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
            f"[green]OK[/] {context.config_file}: {policy.organization.name} "
            f"({policy.organization.timezone}, {policy.organization.locale}), "
            f"send window {summary['send_window']}"
        )
        for name, cadence in policy.cadences.items():
            table = Table(title=f"cadence {name} — {cadence.applies_to.model_dump(exclude_defaults=True)}")
            for column in ("phase", "from", "to", "every", "channels", "templates", "survey", "one-off"):
                table.add_column(column)
            for phase in cadence.phases:
                table.add_row(
                    f"{phase.name} {phase.label}",
                    str(phase.start),
                    str(phase.end),
                    str(phase.every),
                    " > ".join(phase.channels),
                    str(len(phase.templates)),
                    f"{phase.survey.form}/{phase.survey.every}" if phase.survey else "-",
                    ", ".join(o.name for o in phase.one_off) or "-",
                )
            out.print(table)
        surveys = ", ".join(f"{name} ({len(s.questions)} questions)" for name, s in policy.surveys.items())
        out.print(f"surveys: {surveys}")
        out.print(f"weekly report: {summary['report']}")
