"""Measuring the effect of follow-up: outcomes of a season, a backtest of the rules, cadence
comparisons and the cost of follow-up.

The cores are pure functions of plain records (:mod:`followup.outcomes.records`): ``figures``
(内定承諾率・辞退率, decline reasons and timing, survey response, early turnover), ``backtest`` (the pure
rules replayed day by day), ``cost`` (フォロー費用, 採用単価, ROI) and ``compare`` (two cadences side by side,
experiment arms with Wilson intervals). ``store`` is the database edge that loads the records in bulk.
"""
