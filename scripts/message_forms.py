"""Print each message template's email text and its chat (LINE / Slack) short form, with their lengths.

    python scripts/message_forms.py [--config config/followup.yaml] [--locale ja] [--show]

Rendered for the example policy's first sample holder (mentor, department, e-mail), in a phase without a
survey link (a survey template with one); an event's own touches see its RSVP link. ``--show`` prints
each short form as sent.
The lengths are characters: the email's plain text, and the short form's text (the LINE bubble and the
Slack section) beside each channel's declared limit.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from followup.channels import channel_classes  # noqa: E402
from followup.config.loader import load_policy  # noqa: E402
from followup.config.messages import sample_holders, template_context  # noqa: E402
from followup.rendering.templates import MessageTemplates  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "followup.yaml"))
    parser.add_argument("--locale", default=None, help="ja (the policy's) or en")
    parser.add_argument("--show", action="store_true", help="print each short form too")
    args = parser.parse_args()

    loaded = load_policy(args.config)
    policy = loaded.policy
    templates = MessageTemplates(loaded.templates_root, args.locale or policy.organization.locale)
    surveys = {
        p.survey.template
        for c in policy.cadences.values()
        for p in c.phases
        if p.survey and p.survey.template
    }
    events = {t.template: name for name, e in policy.events.items() for _kind, t in e.touches()}
    chat = [c for c in channel_classes() if c.short_form]
    label, holder = sample_holders(policy)[0]

    header = [
        "template",
        "email text",
        *(f"{c.label} (≤{c.short_max_length})" for c in chat),
        "lines",
        "button",
    ]
    rows: list[list[str]] = []
    shown: list[str] = []
    for name in templates.names():
        event = events.get(name)
        context = template_context(
            policy,
            holder,
            template=name,
            send_day=_content_day(policy)
            if name == "monthly_update"
            else holder.start_date - timedelta(days=60),
            phase_name="event" if event else "steady",
            phase_label="",
            event_name=event,
            survey_url="https://followup.example.jp/s/SAMPLE.token" if name in surveys else None,
            rsvp_url="https://followup.example.jp/e/SAMPLE.token" if event else None,
            unsubscribe_url="https://followup.example.jp/opt-out/SAMPLE.token",
        )
        rendered = templates.render(name, context)
        short = rendered.short or ""
        lines = sum(1 for line in short.splitlines() if line.strip())
        per_channel = [str(len(rendered.text_for(c).strip())) for c in chat]
        button = rendered.link.label if rendered.link else "-"
        rows.append([name, str(len(rendered.text.strip())), *per_channel, str(lines), button])
        if args.show:
            link = f"[{rendered.link.label}]({rendered.link.url})\n" if rendered.link else ""
            shown.append(f"--- {name}\n{short}{link}")

    print(f"sample holder: {label}; locale {templates.locale}")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for text in shown:
        print(text)
    return 0


def _content_day(policy: Any) -> date:
    """A day in the first month the example's monthly content covers (so the form shows its topics)."""
    entries = getattr(policy, "content", {}).get("monthly_update", ())
    if not entries:
        return date(2026, 8, 15)
    month = entries[0].month
    return date(int(month[:4]), int(month[5:7]), 15)


if __name__ == "__main__":
    raise SystemExit(main())
