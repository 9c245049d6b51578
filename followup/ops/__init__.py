"""Operations: structured logs, metrics and the audit log."""
