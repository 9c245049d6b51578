"""Offer holders: CSV import, lifecycle changes, erasure and the timeline of one person."""
