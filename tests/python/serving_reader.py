"""A BI-like reader for the concurrency test: ``python serving_reader.py SERVING STOP OUT``.

Until the file STOP exists (and `FINAL_ROUNDS` times after), it reads the serving copy in a
loop, as a BI tool would: it opens the DuckDB file read-only and, in that one connection, reads
the build id and the row count of every table in schemas marts and ml; then it resolves
``parquet/current`` once and reads the manifest, every Parquet file's row count and build-id
metadata. Each reading (or the error it met) is appended to OUT as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

from retail_segments.ops.publish import MANIFEST_NAME, SERVING_DB_NAME, read_current_parquet_dir

PAUSE_SECONDS = 0.05
FINAL_ROUNDS = 5


def read_database(database: Path) -> dict[str, object]:
    """Build id and per-table row counts, all read in one read-only connection."""
    with duckdb.connect(str(database), read_only=True) as connection:
        build_ids = connection.sql("select build_id from serving.build_info").fetchall()
        tables = connection.sql(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema in ('marts', 'ml') and table_type = 'BASE TABLE'"
        ).fetchall()
        counts = {
            name: connection.sql(f"select count(*) from {name}").fetchall()[0][0]
            for (name,) in tables
        }
    return {
        "source": "duckdb",
        "build_ids": sorted({row[0] for row in build_ids}),
        "counts": counts,
    }


def read_parquet(serving: Path) -> dict[str, object]:
    """Manifest build id, each file's build-id metadata and row count, from one version dir."""
    version = read_current_parquet_dir(serving)
    manifest = json.loads((version / MANIFEST_NAME).read_text())
    counts, build_ids = {}, {manifest["build_id"]}
    with duckdb.connect() as connection:
        for table, entry in manifest["tables"].items():
            path = version / entry["file"]
            counts[f"marts.{table}"] = connection.sql(f"select count(*) from '{path}'").fetchall()[
                0
            ][0]
            metadata = connection.sql(
                f"select value::varchar from parquet_kv_metadata('{path}') where key = 'build_id'"
            ).fetchall()
            build_ids.update(row[0] for row in metadata)
    return {"source": "parquet", "build_ids": sorted(build_ids), "counts": counts}


def main(serving: Path, stop: Path, out: Path) -> None:
    """Read in a loop until stop exists, then FINAL_ROUNDS more times; append every reading to
    out."""
    rounds_left = FINAL_ROUNDS
    with out.open("a") as sink:
        while rounds_left:
            if stop.exists():
                rounds_left -= 1
            for reader in (
                lambda: read_database(serving / SERVING_DB_NAME),
                lambda: read_parquet(serving),
            ):
                try:
                    reading = reader()
                except Exception as error:  # every error is a finding of the test
                    reading = {"error": f"{type(error).__name__}: {error}"}
                sink.write(json.dumps(reading) + "\n")
                sink.flush()
            time.sleep(PAUSE_SECONDS)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
