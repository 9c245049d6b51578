"""Tests of followup.ops."""
