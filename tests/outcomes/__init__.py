"""Tests of followup.outcomes."""
