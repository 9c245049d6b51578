"""Charts for the weekly report as PNG bytes (matplotlib, Agg, no pyplot state: safe in any thread).

Japanese labels need a CJK font: it is found through fontconfig (``fc-match``/``fc-list :lang=ja``), so
whatever the system has installed (Debian: fonts-noto-cjk) is used even when matplotlib's font cache
predates it; without one, matplotlib's default font draws what it can rather than failing the report.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager, ft2font
from matplotlib.figure import Figure

JAPANESE_FONTS = ("Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "TakaoGothic")
COLORS = {"sent": "#2e7d32", "failed": "#c62828", "suppressed": "#f9a825", "line": "#1565c0"}
log = logging.getLogger(__name__)


def _fontconfig_japanese() -> list[str]:
    """Font files fontconfig knows for Japanese (``fc-match`` first, then ``fc-list :lang=ja``)."""
    found: list[str] = []
    commands = [
        ["fc-match", "--format=%{file}", "sans-serif:lang=ja"],
        ["fc-list", "--format=%{file}\n", ":lang=ja"],
    ]
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        try:
            output = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        found.extend(line.strip() for line in output.splitlines() if line.strip())
    return [
        f
        for f in dict.fromkeys(found)
        if Path(f).is_file() and Path(f).suffix.lower() in (".ttf", ".otf", ".ttc")
    ]


def _has_japanese(path: str) -> bool:
    try:
        font = ft2font.FT2Font(path)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(ch)) for ch in "内定承諾率")


def _known_to_matplotlib(path: str) -> str | None:
    for entry in font_manager.fontManager.ttflist:
        if os.path.realpath(entry.fname) == os.path.realpath(path):
            return str(entry.name)
    return None


@lru_cache(maxsize=1)
def japanese_font() -> str | None:
    """The family of an installed Japanese font, found through fontconfig (what the system has), then
    matplotlib's own list. A font installed after matplotlib cached its font list (the README's
    ``scripts/test`` installs fonts-noto-cjk after pip) is added to matplotlib's font manager and the
    cache is rebuilt, so charts never draw boxes with the font on disk."""
    candidates = _fontconfig_japanese()
    preferred = sorted(candidates, key=lambda f: (("CJK" not in f and "JP" not in f), "Bold" in f, f))
    for path in preferred:
        if not _has_japanese(path):
            continue
        name = _known_to_matplotlib(path)
        if name is None:  # the cache predates the font: add it now and refresh the cache on disk
            font_manager.fontManager.addfont(path)
            name = _known_to_matplotlib(path)
            _refresh_cache()
        if name:
            return name
    for family in JAPANESE_FONTS:
        try:
            path = font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
        except ValueError:
            continue
        if _has_japanese(path):
            return family
    log.warning(
        "no Japanese font found (fc-list :lang=ja is empty); install fonts-noto-cjk for readable charts"
    )
    return None


def _refresh_cache() -> None:
    """Rewrite matplotlib's font list cache with what the manager knows now (fonts added above)."""
    try:
        cache = Path(matplotlib.get_cachedir()) / f"fontlist-v{font_manager.FontManager.__version__}.json"
        font_manager.json_dump(font_manager.fontManager, cache)
    except OSError:  # a read-only cache directory: the font still works in this process
        log.info("could not refresh matplotlib's font cache", exc_info=True)


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
            step = max(1, -(-len(labels) // 8))  # at most 8 labels: "11/30" needs room at this width
            ax.set_xticks(positions[::step], [labels[i] for i in positions[::step]])
            ax.tick_params(axis="x", labelrotation=0, labelsize=9)
        else:
            ax.text(0.5, 0.5, "まだ回答がありません", ha="center", va="center", transform=ax.transAxes)
        ax.axhline(
            threshold, color=COLORS["failed"], linestyle="--", linewidth=1, label=f"基準 {threshold:.1f}"
        )
        ax.set_ylim(1, 5.2)
        ax.set_ylabel("平均スコア(5段階)")
        ax.set_title("パルスサーベイの推移(週平均)", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False, ncols=1)
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
        ax.set_title("今週の連絡(チャネル別)", loc="left")
        top = max([*sent, *failed, *suppressed, 1])
        ax.set_ylim(0, top * 1.15)
        # the legend goes below the axes: above the bars it covered the tallest ones and the title
        ax.legend(frameon=False, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
        return _png(fig)


# --- the season report


def bar_chart(
    labels: Sequence[str], values: Sequence[float], title: str, ylabel: str, *, color: str = "#1f3a5f"
) -> bytes:
    """One bar per label (decline timing, reasons); the value written above each bar."""
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(6.0, 2.8))
        ax = fig.subplots()
        positions = list(range(len(values)))
        if values:
            bars = ax.bar(positions, values, color=color)
            ax.bar_label(bars, fmt="%g", fontsize=8)
            ax.set_xticks(
                positions,
                list(labels),
                rotation=30 if len(labels) > 6 else 0,
                ha="right" if len(labels) > 6 else "center",
            )
        else:
            ax.text(0.5, 0.5, "データがありません", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        return _png(fig)


def rate_chart(
    labels: Sequence[str], acceptance: Sequence[float | None], decline: Sequence[float | None], title: str
) -> bytes:
    """内定承諾率 and 辞退率 (in %) per group, side by side."""
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(6.0, 2.8))
        ax = fig.subplots()
        width = 0.38
        positions = list(range(len(labels)))
        for offset, (values, label, color) in enumerate(
            ((acceptance, "内定承諾率", COLORS["sent"]), (decline, "辞退率", COLORS["failed"]))
        ):
            ax.bar(
                [p + (offset - 0.5) * width for p in positions],
                [(v or 0) * 100 for v in values],
                width,
                label=label,
                color=color,
            )
        ax.set_xticks(
            positions,
            list(labels),
            rotation=30 if len(labels) > 5 else 0,
            ha="right" if len(labels) > 5 else "center",
        )
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(title)
        ax.legend(frameon=False, ncols=2, loc="upper right")
        return _png(fig)


def survey_chart(
    months: Sequence[str], response: Sequence[float | None], pulse: Sequence[float | None]
) -> bytes:
    """Monthly survey response rate (bars, %) and mean pulse score (line, 1–5)."""
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(6.0, 2.8))
        ax = fig.subplots()
        positions = list(range(len(months)))
        ax.bar(positions, [(r or 0) * 100 for r in response], color="#90a4ae", label="回答率(%)")
        ax.set_ylim(0, 100)
        ax.set_ylabel("回答率(%)")
        ax.set_xticks(positions, list(months), rotation=30 if len(months) > 6 else 0)
        twin = ax.twinx()
        points = [(p, v) for p, v in zip(positions, pulse, strict=True) if v is not None]
        if points:
            twin.plot(
                [p for p, _ in points],
                [v for _, v in points],
                marker="o",
                color=COLORS["line"],
                label="平均スコア",
            )
        twin.set_ylim(1, 5)
        twin.set_ylabel("平均スコア(5段階)")
        ax.set_title("アンケート回答率と満足度(パルス)の推移")
        return _png(fig)


def backtest_chart(
    labels: Sequence[str],
    recall: Sequence[float | None],
    false_alarms: Sequence[float | None],
    leads: Sequence[Sequence[int]],
) -> bytes:
    """Per policy: recall (% of decliners flagged) and false alarms per 100 holders per month, and the
    lead time before the decline as a box plot (median and quartiles)."""
    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(6.0, 3.0))
        left, right = fig.subplots(1, 2)
        positions = list(range(len(labels)))
        width = 0.38
        left.bar(
            [p - width / 2 for p in positions],
            [(r or 0) * 100 for r in recall],
            width,
            color=COLORS["sent"],
            label="検知率(%)",
        )
        left.bar(
            [p + width / 2 for p in positions],
            [f or 0 for f in false_alarms],
            width,
            color=COLORS["suppressed"],
            label="誤警報/100人・月",
        )
        left.set_xticks(positions, list(labels))
        left.set_title("検知率と誤警報")
        left.legend(frameon=False, fontsize=8, loc="upper left")
        data = [list(lead) or [0] for lead in leads]
        left.set_ylim(0, max([100.0, *((f or 0) * 1.15 for f in false_alarms)]))
        right.boxplot(data, tick_labels=list(labels), showfliers=False)
        right.set_title("辞退の何日前に気づけたか")
        right.set_ylabel("日")
        return _png(fig)
