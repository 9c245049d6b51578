"""Tasks (提出物・入社前研修): per-holder status, due dates, the 提出状況 sheet and its CSV."""
