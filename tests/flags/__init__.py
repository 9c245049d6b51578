"""Tests of followup.flags."""
