"""FAST and the channel overlap computed by DuckDB from the raw sales and members, by full scans:
the baseline the analytics benchmark prints beside the service's figures, from the same data.

    python fast.py DATA_DIR FIRST_DAY LAST_DAY SAMPLES

DATA_DIR holds sales.csv (member_id, day, channel, amount_minor; member_id empty for a
non-member) and members.csv (member_id, enrolled_day). Prints one JSON object: per figure, the
numbers the service reports for it and the p50 and p99 of SAMPLES runs, in milliseconds.
The AIPL windows are the defaults (purchased in 913 days, loyal on 3 distinct days in 365);
there are no interactions, so no one is only Aware or Interested.
"""

import json
import sys
import time
from datetime import date, timedelta

import duckdb

STAGES = """
    WITH per_member AS (
        SELECT member_id,
            bool_or(day BETWEEN $start - 912 AND $start) AS purchased_start,
            count(DISTINCT CASE WHEN day BETWEEN $start - 364 AND $start THEN day END) >= 3 AS loyal_start,
            bool_or(day BETWEEN $last - 912 AND $last) AS purchased_end,
            count(DISTINCT CASE WHEN day BETWEEN $last - 364 AND $last THEN day END) >= 3 AS loyal_end
        FROM sales WHERE member_id IS NOT NULL AND day <= $last GROUP BY member_id
    ), stages AS (
        SELECT CASE WHEN loyal_start THEN 2 WHEN purchased_start THEN 1 ELSE 0 END AS at_start,
               CASE WHEN loyal_end THEN 2 WHEN purchased_end THEN 1 ELSE 0 END AS at_end
        FROM per_member
    )
"""

QUERIES = {
    "FAST_FERTILITY": STAGES + "SELECT count(*) FILTER (WHERE at_end > 0), 1 FROM stages",
    "FAST_ADVANCING": STAGES
    + "SELECT count(*) FILTER (WHERE at_start > 0 AND at_end > at_start), "
    "count(*) FILTER (WHERE at_start > 0) FROM stages",
    "FAST_MEMBERS": "SELECT count(*), 1 FROM members WHERE enrolled_day <= $last",
    # The top 20% of the year's buyers by spend: their count, over members.
    "FAST_HIGH_VALUE_MEMBERS": "SELECT CAST(ceil(count(DISTINCT member_id) * 20 / 100) AS BIGINT), "
    "(SELECT count(*) FROM members WHERE enrolled_day <= $last) "
    "FROM sales WHERE member_id IS NOT NULL AND day BETWEEN $last - 364 AND $last",
    "FAST_THRIVING": "SELECT count(DISTINCT member_id), "
    "(SELECT count(*) FROM members WHERE enrolled_day <= $last) "
    "FROM sales WHERE member_id IS NOT NULL AND day BETWEEN $first AND $last",
    "CHANNEL_OVERLAP": """
        WITH bought AS (
            SELECT DISTINCT member_id, channel FROM sales
            WHERE member_id IS NOT NULL AND day BETWEEN $first AND $last
        )
        SELECT a.channel, b.channel, count(*) FROM bought a JOIN bought b
            ON a.member_id = b.member_id AND a.channel <= b.channel
        GROUP BY a.channel, b.channel ORDER BY a.channel, b.channel
    """,
}


def quantile(samples, q):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    data, first, last, samples = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    db = duckdb.connect()
    db.execute(
        f"CREATE TABLE sales AS SELECT * FROM read_csv('{data}/sales.csv', header = true, "
        "columns = {'member_id': 'VARCHAR', 'day': 'DATE', 'channel': 'INTEGER', 'amount_minor': 'BIGINT'})"
    )
    db.execute(
        f"CREATE TABLE members AS SELECT * FROM read_csv('{data}/members.csv', header = true, "
        "columns = {'member_id': 'VARCHAR', 'enrolled_day': 'DATE'})"
    )
    first, last = date.fromisoformat(first), date.fromisoformat(last)
    # Advancing's start: the day before the window, as the service reads it.
    parameters = {"first": first, "last": last, "start": first - timedelta(days=1)}
    figures = {}
    for name, sql in QUERIES.items():
        wanted = {key: value for key, value in parameters.items() if f"${key}" in sql}
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            rows = db.execute(sql, wanted).fetchall()
            timings.append((time.perf_counter() - started) * 1000)
        figures[name] = {
            "rows": [list(row) for row in rows],
            "p50_ms": quantile(timings, 0.5),
            "p99_ms": quantile(timings, 0.99),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
