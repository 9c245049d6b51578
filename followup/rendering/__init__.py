"""Rendering: HR-authored Jinja2 templates in a sandbox, per locale and channel."""
