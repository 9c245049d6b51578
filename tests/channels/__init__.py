"""Tests of followup.channels."""
