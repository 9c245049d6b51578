"""Tests of followup.engagement."""
