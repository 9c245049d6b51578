"""Tests of followup.report."""
