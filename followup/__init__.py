"""followup: 内定者フォロー自動化 (offer-acceptance follow-up automation)."""

__version__ = "0.1.0"
