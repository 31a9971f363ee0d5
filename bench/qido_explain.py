"""What the database does for QIDO searches: EXPLAIN (ANALYZE, BUFFERS) counters, not times.

``python -m bench.qido_explain < requests.json`` with ``DATABASE_URL`` (PostgreSQL) and the
usual settings environment. Reads a JSON list of ``{"name", "path", "params"}`` (a QIDO
path under ``/dicomweb`` and its query parameters, as ``bench/qido.py`` sends them), runs
each search the way ``dicomweb.views.search`` does — with the statements captured as the
view sends them — then ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` of every statement
three times (the last, warm one counts), and writes a JSON list with, per request and
summed over its statements:

* ``statements``: how many SQL statements the search ran;
* ``planning_ms``, ``planning_buffers``: planner time and the buffers it touched;
* ``execution_ms``: executor time (with EXPLAIN's per-node timing overhead);
* ``buffers``: shared buffers hit + read by the executor (8 kB pages);
* ``rows_read``: rows the scans looked at — returned by a scan node, removed by its filter
  or by a recheck — times its loops (bitmap index scans excluded: their rows are TIDs);
* ``results``: rows of the result page.

Buffers and rows do not drift with the machine's speed as wall times do, so they show
whether a search's cost depends on the size of the archive. Run by ``bench/qido.py
--qido-explain``; it imports Django, so it runs in its own process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from urllib.parse import urlencode

SCANS_WITHOUT_ROWS = {"Bitmap Index Scan"}


def _target(path: str) -> tuple[str, str | None, str | None]:
    """``/studies``, ``/series``, ``/studies/{uid}/instances``… → (level, study UID, series UID)."""
    parts = [part for part in path.split("/") if part]
    study_uid = parts[1] if len(parts) >= 3 and parts[0] == "studies" else None
    series_uid = parts[3] if len(parts) >= 5 and parts[2] == "series" else None
    level = {"studies": "study", "series": "series", "instances": "instance"}[parts[-1]]
    return level, study_uid, series_uid


def _rows_read(node: dict[str, Any]) -> int:
    total = 0
    if "Scan" in node.get("Node Type", "") and node["Node Type"] not in SCANS_WITHOUT_ROWS:
        per_loop = (
            node.get("Actual Rows", 0)
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Index Recheck", 0)
        )
        total += round(per_loop * node.get("Actual Loops", 1))
    for child in node.get("Plans", []):
        total += _rows_read(child)
    return total


def explain(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from django.db import connection
    from django.http import QueryDict

    from dicomweb.queryparams import parse_search
    from dicomweb.views import search as search_view

    out = []
    for request in requests:
        level, study_uid, series_uid = _target(request["path"])
        statements: list[tuple[str, Any]] = []

        def capture(execute, sql, params, many, context, statements=statements):
            statements.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            search_request = parse_search(
                QueryDict(urlencode(request["params"])), level, study_uid=study_uid, series_uid=series_uid
            )
            spec = search_request.spec
            above = search_view.above_levels(level, study_uid, series_uid)
            rows = search_view._rows(search_view.search(spec), level, spec.offset, spec.limit, above)
            view = search_view.SearchView()
            view.target = level
            view._results(rows, search_request, "http://bench", study_uid, series_uid)
        figures = {
            "name": request["name"],
            "path": request["path"],
            "params": request["params"],
            "statements": len(statements),
            "planning_ms": 0.0,
            "planning_buffers": 0,
            "execution_ms": 0.0,
            "buffers": 0,
            "rows_read": 0,
            "results": len(rows),
        }
        with connection.cursor() as cursor:
            for sql, params in statements:
                for _ in range(3):
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
                    result = cursor.fetchone()[0]
                plan = (json.loads(result) if isinstance(result, str) else result)[0]
                top = plan["Plan"]
                planning = plan.get("Planning", {})
                figures["planning_ms"] += plan["Planning Time"]
                figures["planning_buffers"] += planning.get("Shared Hit Blocks", 0) + planning.get(
                    "Shared Read Blocks", 0
                )
                figures["execution_ms"] += plan["Execution Time"]
                figures["buffers"] += top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
                figures["rows_read"] += _rows_read(top)
        out.append(figures)
    return out


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    json.dump(explain(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
