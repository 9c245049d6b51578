"""Tests of followup.config."""
