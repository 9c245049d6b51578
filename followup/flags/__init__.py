"""Flags: the pure rule engine and its database edge (histories in, flags out)."""
