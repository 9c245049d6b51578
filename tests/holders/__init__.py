"""Tests of followup.holders."""
