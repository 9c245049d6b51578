"""The web app: survey pages, opt-out pages, Slack/LINE webhooks, the HR dashboard and its JSON API."""

from followup.web.app import create_app

__all__ = ["create_app"]
