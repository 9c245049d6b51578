"""Tests of followup.delivery."""
