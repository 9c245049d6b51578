"""Events' RSVPs and attendance: answers by link, Slack button or LINE postback, seats and the waiting
list held by the database (``store``), 出欠一覧 rows and their CSV (``roster``, pure)."""
