"""The HR policy (cadences, calendar, channels, rules, surveys, report) and its loader."""

from followup.config.loader import LoadedPolicy, load_policy, resolve_env
from followup.config.schema import Cadence, Phase, Policy

__all__ = ["Cadence", "LoadedPolicy", "Phase", "Policy", "load_policy", "resolve_env"]
