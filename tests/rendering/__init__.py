"""Tests of followup.rendering."""
