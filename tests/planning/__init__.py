"""Tests of followup.planning."""
