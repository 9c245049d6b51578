"""Delivery: claim a due touch, build its message, send it through a channel, record the outcome."""
