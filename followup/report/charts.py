"""Charts for the weekly report as PNG bytes (matplotlib, Agg, no pyplot state: safe in any thread).

Japanese labels need a CJK font; Noto Sans CJK JP (Debian: fonts-noto-cjk) is used when installed,
otherwise matplotlib's default font draws what it can rather than failing the report.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager
from matplotlib.figure import Figure

JAPANESE_FONTS = ("Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "TakaoGothic")
COLORS = {"sent": "#2e7d32", "failed": "#c62828", "suppressed": "#f9a825", "line": "#1565c0"}


@lru_cache(maxsize=1)
def japanese_font() -> str | None:
    """The first installed Japanese font family, or None (then labels may show as boxes)."""
    for family in JAPANESE_FONTS:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        return family
    logging.getLogger(__name__).warning("no Japanese font found; install fonts-noto-cjk for readable charts")
    return None


def _style() -> Any:  # matplotlib types rc keys as a Literal union
    family = japanese_font()
    return {
        "font.family": [family, "DejaVu Sans"] if family else ["DejaVu Sans"],
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # missing glyphs warn per character; one warning above is enough
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def pulse_trend_chart(labels: Sequence[str], means: Sequence[float], threshold: float) -> bytes:
    """Weekly mean pulse score over the season, with the low-pulse threshold as a dashed line."""
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(6.0, 2.6))
        ax = fig.subplots()
        if means:
            positions = list(range(len(means)))
            ax.plot(positions, means, marker="o", color=COLORS["line"], linewidth=2)
            step = max(1, len(labels) // 10)
            ax.set_xticks(positions[::step], [labels[i] for i in positions[::step]])
        else:
            ax.text(0.5, 0.5, "まだ回答がありません", ha="center", va="center", transform=ax.transAxes)
        ax.axhline(
            threshold, color=COLORS["failed"], linestyle="--", linewidth=1, label=f"基準 {threshold:.1f}"
        )
        ax.set_ylim(1, 5)
        ax.set_ylabel("平均スコア(5段階)")
        ax.set_title("パルスサーベイの推移(週平均)")
        ax.legend(loc="lower left", frameon=False)
        return _png(fig)


def deliveries_chart(
    channels: Sequence[str], sent: Sequence[int], failed: Sequence[int], suppressed: Sequence[int]
) -> bytes:
    """This week's touches per channel: sent, failed and suppressed side by side."""
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(6.0, 2.6))
        ax = fig.subplots()
        width = 0.27
        positions = list(range(len(channels)))
        for offset, (values, label, color) in enumerate(
            (
                (sent, "送信済み", COLORS["sent"]),
                (failed, "失敗", COLORS["failed"]),
                (suppressed, "抑制", COLORS["suppressed"]),
            )
        ):
            ax.bar([p + (offset - 1) * width for p in positions], values, width, label=label, color=color)
        ax.set_xticks(positions, list(channels))
        ax.set_ylabel("件数")
        ax.set_title("今週の連絡(チャネル別)")
        ax.legend(frameon=False, ncols=3, loc="upper right")
        return _png(fig)
