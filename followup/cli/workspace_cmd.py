"""``followup workspace invite MENTOR``: mail a mentor (or an executive) their sign-in link.

The link opens the workspace with only that person's holders and human touches (``/m/TOKEN``,
signed, two weeks). ``--print`` prints it instead, for HR to pass on another way.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from followup.errors import Problem, UserInputError

if TYPE_CHECKING:
    from followup.config.context import AppContext


out = Console(highlight=False)
workspace_app = typer.Typer(help="HRワークスペース — invite mentors and executives (sign-in links).")


def _find_mentor(context: AppContext, who: str) -> tuple[str, str]:
    """(email, name) of the mentor called ``who`` (their name or email under ``mentors:``, or the
    ``mentor_email`` of some holder)."""
    from sqlalchemy import select

    from followup.db.models import OfferHolder

    mentors = context.policy.mentors
    for email, mentor in mentors.items():
        if who in (email, mentor.name, mentor.name.replace(" ", "")):
            return email, mentor.name
    with context.session() as session:
        found = session.scalar(
            select(OfferHolder.mentor_email).where(OfferHolder.mentor_email == who).limit(1)
        )
    if found:
        return found, found
    known = ", ".join(m.name for m in mentors.values()) or "none"
    raise UserInputError(
        Problem(Path(who), None, None, f"unknown mentor (メンターが見つかりません; known: {known})")
    )


def invitation(context: AppContext, email: str, name: str, url: str) -> EmailMessage:
    """The invitation mail, in the keigo HR would send."""
    from followup.channels.email import EmailPolicy

    policy = context.policy
    org = policy.organization
    sender = policy.channels.of(EmailPolicy)
    msg = EmailMessage()
    msg["Subject"] = f"【{org.name}】内定者フォローのページへのご案内"
    msg["From"] = Address(display_name=sender.sender_name, addr_spec=sender.sender)
    msg["To"] = email
    msg["Message-ID"] = make_msgid(domain=sender.sender.rpartition("@")[2] or None)
    msg.set_content(
        f"{name} 様\n\n"
        f"いつもお世話になっております。{org.name} {org.hr_name}です。\n"
        "ご担当いただいている内定者の様子と、お願いしているお電話・面談などの予定を、"
        "下記のページからご確認いただけます。実施された際は、同じページからご記録ください。\n\n"
        f"{url}\n\n"
        "このリンクはご本人専用です(有効期限は2週間です)。他の方への転送はご遠慮ください。\n"
        "ご不明な点がございましたら、人事担当までお気軽にお問い合わせください。\n\n"
        f"{org.name} {org.hr_name}\n{org.hr_email}\n"
    )
    return msg


@workspace_app.command("invite")
def invite(
    ctx: typer.Context,
    mentor: Annotated[str, typer.Argument(help="The mentor's name or email (mentors: in the policy).")],
    print_link: Annotated[
        bool, typer.Option("--print", help="Print the link instead of mailing it.")
    ] = False,
) -> None:
    """Mail a mentor or an executive their sign-in link (their own holders only). メンターを招待します。"""
    from datetime import UTC, datetime

    from followup.delivery.links import LinkSigner
    from followup.ops.audit import audit

    context: AppContext = ctx.obj
    email, name = _find_mentor(context, mentor)
    url = LinkSigner.from_settings(context.settings).mentor_url(email)
    with context.session() as session:
        audit(
            session, "mentor_invite", now=datetime.now(UTC), actor="cli", mentor=email, mailed=not print_link
        )
    if print_link:
        out.print(url, markup=False, soft_wrap=True)
        return
    from followup.channels.email import EmailPolicy
    from followup.config import resolve_env
    from followup.files import write_private
    from followup.report.send import _outbox, transmit

    msg = invitation(context, email, name, url)
    smtp_url = resolve_env(context.policy.channels.of(EmailPolicy).smtp_url)
    if smtp_url:
        transmit(msg, smtp_url)
        out.print(f"{name}: 招待メールを送信しました ({email})", markup=False)
    else:
        path = _outbox(context) / "invites" / f"invite-{email}.eml"
        write_private(path, msg.as_bytes())
        out.print(f"{name}: 招待メールを書き出しました {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(workspace_app, name="workspace")
