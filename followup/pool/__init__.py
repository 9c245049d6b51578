"""The talent pool (人材プール): candidates not hired (不採用) and declined offer holders stay in touch.

Consent first (特定電子メール法): beyond the rejection mail, only people with recorded consent hear from
us, and every mail carries a one-click opt-out. ``rules`` is pure (who is in the pool, may a touch go);
``store`` is the database edge (members for the planner, consent, clicks, the season's figures). The
planner itself is :mod:`followup.planning.pool`, beside the offer holders' planner.
"""
