"""Signed links: a rotated secret keeps old links working while they age out; tampering never works."""

from __future__ import annotations

import pytest

from followup.delivery.links import LinkInvalid, LinkSigner


def test_links_signed_with_the_previous_key_still_open_after_rotation() -> None:
    old = LinkSigner("old-secret-" + "x" * 30, "https://followup.example.co.jp")
    url = old.survey_url(42)
    token = url.rsplit("/", 1)[1]
    rotated = LinkSigner("new-secret-" + "y" * 30, "https://followup.example.co.jp", previous=(old.secret,))
    assert rotated.read_survey_token(token, max_age=3600) == 42
    assert rotated.survey_token(42) != old.survey_token(42)  # new links use the new key
    with pytest.raises(LinkInvalid):
        LinkSigner("new-secret-" + "y" * 30, "https://x").read_survey_token(token, max_age=3600)


def test_a_survey_token_is_not_an_opt_out_token() -> None:
    signer = LinkSigner("s" * 40, "https://x")
    with pytest.raises(LinkInvalid):
        signer.read_opt_out_token(signer.survey_token(7))
