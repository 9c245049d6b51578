"""Engagement: what offer holders send back (survey answers, buttons, replies, opt-outs)."""
