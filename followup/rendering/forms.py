"""The short form of a message: what chat channels (LINE, Slack) send instead of the email letter.

An email is a letter (greeting, details, signature, opt-out footer); in LINE or Slack the same ~1,000
characters read as a wall of text with raw URLs. So each message directory holds ``short.j2`` beside
``text.j2``, written by HR like the rest::

    {{ holder.family_name }}様
    株式会社サンプル 人事部の鈴木です。先輩社員との座談会のご案内をお送りします。
    ご出欠は、下のボタンからお知らせください。
    [出欠を回答する]({{ rsvp_url }})

* the addressee 「山田様」 and 2–5 lines of keigo; no ――― signature block;
* at most one button, written alone on a line as ``[ラベル](URL)``; a URL anywhere else is refused (the
  button carries it). When the touch carries a survey link, the button must be that link, so the
  survey is never crowded out;
* each chat channel declares its limits once (``Channel.short_max_length``, ``short_max_lines``,
  ``link_label_limit``); a short form over them is refused where it is rendered (check-config and send),
  never cut, and never generated from the email text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from followup.channels.base import Channel, Link

SHORT_FILE = "short.j2"

_BUTTON = re.compile(r"^\s*\[([^\[\]\n]+)\]\((\S*)\)\s*$")
_URL = re.compile(r"https?://\S+|www\.\S+")
_RULE = re.compile(r"[―─━—‐\-=＝_~〜・*]{4,}")  # a signature or section rule: ――――, ----, ====


@dataclass(frozen=True)
class ShortForm:
    """A rendered short form: its text (without the button line) and its one button, if any."""

    text: str
    link: Link | None = None


def parse_short(rendered: str) -> ShortForm:
    """Split the rendered ``short.j2`` into text and button; ValueError for more than one button."""
    lines: list[str] = []
    link: Link | None = None
    for line in rendered.split("\n"):
        match = _BUTTON.match(line)
        if match is None:
            lines.append(line)
            continue
        if link is not None:
            raise ValueError(
                "more than one button: a chat message carries one button (one [ラベル](URL) line)"
            )
        label, url = match.group(1).strip(), match.group(2).strip()
        if not url.startswith(("https://", "http://")):
            raise ValueError(
                f"the button 「{label}」 has no web address (got {url!r}): guard it with {{% if … %}}"
            )
        link = Link(label, url)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
    return ShortForm(text, link)


def short_problem(form: ShortForm, channel: type[Channel], survey_url: str | None) -> str | None:
    """What makes ``form`` unfit for ``channel`` (its declared limits, raw URLs, a signature rule, a
    missing survey button), or None."""
    lines = [line for line in form.text.splitlines() if line.strip()]
    if len(lines) < 2:
        return "write the addressee (「{{ holder.family_name }}様」) and at least one line"
    if len(lines) > channel.short_max_lines:
        return (
            f"{len(lines)} lines; {channel.label} shows at most {channel.short_max_lines} "
            "(the addressee and up to five lines): keep the details for the email"
        )
    length = len(form.text.strip())
    if length > channel.short_max_length:
        return (
            f"{length} characters; {channel.label} allows at most {channel.short_max_length} "
            "in the short form"
        )
    url = _URL.search(form.text)
    if url:
        return f"a web address in the text ({url.group(0)[:40]}…): put it in the one button as [ラベル](URL)"
    rule = next((line for line in lines if _RULE.search(line)), None)
    if rule is not None:
        return f"a rule line 「{rule.strip()[:20]}」: chat messages carry no signature block"
    if form.link is not None and len(form.link.label) > channel.link_label_limit:
        return (
            f"the button 「{form.link.label}」 has {len(form.link.label)} characters; "
            f"{channel.label} shows at most {channel.link_label_limit}"
        )
    if survey_url and (form.link is None or form.link.url != survey_url):
        return (
            "this touch carries a survey: the button must be the survey link, "
            "[アンケートに回答する]({{ survey_url }})"
        )
    return None
