"""Tests of followup.web."""
