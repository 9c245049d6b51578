"""The HR workspace pages at N holders: server time and size of each page, beside the old unpaged list.

    python benchmarks/web_pages.py [--holders 100000] [--postgres]

Seeds N holders with bulk inserts (plus a sent and a planned touch each, open flags for one in ten,
pulse answers for one in five) and runs ANALYZE, then requests through the real app (FastAPI's TestClient, in
process: the figure is server time, no network): the list's first page, a filtered list (高リスク・
新卒・one department), a search, a holder page, one API page (``/api/holders?limit=100``) and the
home page, each the median of a few runs. The baseline is the previous implementation, every holder
on one page (``holder_summaries`` over everyone into ``dashboard.html``, and the unpaged JSON API),
run last, with the process's peak RSS before and after it. ``--postgres`` repeats it on a private
PostgreSQL cluster (tests/services.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NOW = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
TOKEN = "bench-dashboard-token-0123456789abcdef"
DEPARTMENTS = ("営業部", "開発部", "管理部", "企画部", "人事部")
FAMILY = ("山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村", "小林", "加藤")
GIVEN = ("花子", "健太", "一郎", "美咲", "次郎", "さくら", "翔", "陽菜", "蓮", "結衣")


def seed(url: str, n: int) -> None:
    """Bulk inserts (Core executemany), in batches: holders, touches, flags, pulse answers."""
    from sqlalchemy import insert, text

    from followup.db.models import Flag, OfferHolder, SurveyResponse, Touch
    from followup.db.session import session_scope

    batch = 5000
    with session_scope(url) as session:
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(n, start + batch)):
                rows.append(
                    {
                        "id": i + 1,
                        "external_id": f"NG-{i:06d}",
                        "name": f"{FAMILY[i % 10]} {GIVEN[(i // 10) % 10]}",
                        "name_kana": None,
                        "email": f"h{i}@example.ac.jp",
                        "track": "new_grad" if i % 4 else "mid_career",
                        "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                        "offer_date": date(2026, 6, 1) + timedelta(days=i % 60),
                        "start_date": date(2027, 4, 1),
                        "status": "accepted" if i % 3 else "offered",
                        "mentor_email": f"mentor{i % 200}@example.co.jp",
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                )
            session.execute(insert(OfferHolder), rows)
            touches, flags, answers = [], [], []
            for i in range(start, min(n, start + batch)):
                hid = i + 1
                for seq, (status, due) in enumerate(
                    (("sent", NOW - timedelta(days=5)), ("planned", NOW + timedelta(days=9)))
                ):
                    touches.append(
                        {
                            "id": hid * 2 + seq,
                            "key": f"NG-{i:06d}:new_grad:steady:{seq}",
                            "holder_id": hid,
                            "cadence": "new_grad",
                            "phase": "steady",
                            "seq": seq,
                            "kind": "message",
                            "channel": "email",
                            "template": "checkin",
                            "due_at": due,
                            "status": status,
                            "sent_at": due if status == "sent" else None,
                            "attempts": 0,
                            "suppressed_count": 0,
                            "in_doubt_resends": 0,
                            "created_at": NOW,
                        }
                    )
                if i % 10 == 0:
                    flags.append(
                        {
                            "holder_id": hid,
                            "rule": "declining_signal" if i % 20 == 0 else "neglected",
                            "severity": "high" if i % 20 == 0 else "medium",
                            "reason": "パルスサーベイで「他社も検討している」と回答しました。",
                            "action": "人事担当から電話してください。",
                            "first_seen": NOW - timedelta(days=3),
                            "last_seen": NOW,
                        }
                    )
                if i % 5 == 0:
                    answers.append(
                        {
                            "touch_id": hid * 2,
                            "holder_id": hid,
                            "form": "pulse",
                            "answers": {"motivation": 3},
                            "score": 3.0 + (i % 3) / 2,
                            "declining": False,
                            "submitted_at": NOW - timedelta(days=4),
                            "updated_at": NOW - timedelta(days=4),
                        }
                    )
            session.execute(insert(Touch), touches)
            if flags:
                session.execute(insert(Flag), flags)
            if answers:
                session.execute(insert(SurveyResponse), answers)
            session.flush()
    with session_scope(url) as session:
        session.execute(text("ANALYZE"))  # planner statistics, as a database in use has them


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, tmp: Path, n: int, repeat: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from followup.config.context import AppContext
    from followup.config.settings import Settings
    from followup.holders.timeline import holder_summaries
    from followup.web import create_app
    from followup.web.dashboard import _labels
    from followup.web.state import page, state_of

    settings = Settings(
        database_url=url,
        var_dir=tmp / "var",
        config=REPO / "config" / "followup.yaml",
        base_url="http://testserver",
        secret_key="bench-secret-key-" + "x" * 32,
        dashboard_token=TOKEN,
    )
    app = create_app(AppContext(settings=settings), clock=lambda: NOW)

    @app.get("/baseline/dashboard", include_in_schema=False)
    def baseline_page(request: Request) -> HTMLResponse:
        """The list as it was: every holder's summary on one page."""
        state = state_of(request)
        with state.session() as session:
            rows = holder_summaries(session, NOW)
        return page(request, "dashboard.html", {"rows": rows, **_labels(state)})

    @app.get("/baseline/api", include_in_schema=False)
    def baseline_api(request: Request) -> dict[str, Any]:
        with state_of(request).session() as session:
            return {"holders": holder_summaries(session, NOW)}

    target = f"NG-{n // 2:06d}"
    pages = {
        "list (first page)": "/dashboard/holders",
        "filtered list": "/dashboard/holders?track=new_grad&department=営業部&severity=high",
        "search": "/dashboard/holders?q=山田花子",
        "holder page": f"/dashboard/holders/{target}",
        "API page (limit=100)": "/api/holders?limit=100",
        "home (今週やること)": "/dashboard",
    }
    results: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        for name, path in pages.items():
            times, size = [], 0
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(path, headers=headers)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
                size = len(response.content)
            results[name] = {"ms": statistics.median(times) * 1000, "kb": size / 1024}
        # the next page through the cursor: as cheap as the first
        first = client.get("/api/holders?limit=100", headers=headers).json()
        started = time.perf_counter()
        second = client.get(f"/api/holders?limit=100&cursor={first['next_cursor']}", headers=headers)
        results["API next page"] = {
            "ms": (time.perf_counter() - started) * 1000,
            "kb": len(second.content) / 1024,
        }
        before = _peak_mib()
        for name, path in (
            ("baseline: unpaged list", "/baseline/dashboard"),
            ("baseline: unpaged API", "/baseline/api"),
        ):
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            results[name] = {"ms": (time.perf_counter() - started) * 1000, "kb": len(response.content) / 1024}
        results["peak RSS MiB (workspace pages / after baseline)"] = (before, _peak_mib())
    return results


def report(label: str, results: dict[str, Any]) -> tuple[float, float]:
    """Print one run; returns (baseline list / first page, the slowest workspace page in ms)."""
    print(f"--- {label}")
    for name, value in results.items():
        if isinstance(value, tuple):
            print(f"{name:48} {value[0]:8.0f} / {value[1]:.0f}")
        else:
            print(f"{name:32} {value['ms']:10.1f} ms {value['kb']:10.1f} KB")
    paged = max(v["ms"] for k, v in results.items() if isinstance(v, dict) and not k.startswith("baseline"))
    ratio = results["baseline: unpaged list"]["ms"] / results["list (first page)"]["ms"]
    return float(ratio), float(paged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also on a private PostgreSQL cluster")
    args = parser.parse_args()

    from followup.db.session import dispose_engines, get_engine

    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    runs: list[tuple[str, str]] = [("SQLite", f"sqlite:///{tmp}/web.db")]
    postgres = None
    if args.postgres:
        from tests.services import start_postgres

        postgres = start_postgres(tmp / "pg")
        runs.append(("PostgreSQL", postgres.create_database("bench_web")))
    ratios = []
    try:
        for label, url in runs:
            get_engine(url)
            started = time.perf_counter()
            seed(url, args.holders)
            print(f"{label}: seeded {args.holders:,} holders in {time.perf_counter() - started:.1f} s")
            results = measure(url, tmp, args.holders, args.repeat)
            ratio, slowest = report(f"{label}, {args.holders:,} holders", results)
            ratios.append((label, ratio, slowest, results))
            dispose_engines()
    finally:
        if postgres is not None:
            postgres.stop()
    (tmp / "results.json").write_text(json.dumps([r[3] for r in ratios], default=str), encoding="utf-8")
    print(
        "ratio: "
        + "; ".join(
            f"{label} unpaged list {r['baseline: unpaged list']['ms']:.0f} ms / first page "
            f"{r['list (first page)']['ms']:.0f} ms = {ratio:.0f}x (slowest workspace page {slowest:.0f} ms)"
            for label, ratio, slowest, r in ratios
        )
    )


if __name__ == "__main__":
    main()
