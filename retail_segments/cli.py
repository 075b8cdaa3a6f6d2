"""Command line: ``python -m retail_segments build|bench``.

``build`` finds the raw file (see `retail_segments.paths`), then runs ``dbt build``; any further
arguments go to dbt unchanged (e.g. ``build --select customer_rfm+``).
"""

from __future__ import annotations

import argparse
import sys

from retail_segments.dbt_runner import dbt_environment, run_dbt
from retail_segments.paths import RawDataNotFoundError


def _build(dbt_args: list[str]) -> int:
    try:
        env = dbt_environment()
    except RawDataNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Raw data: {env['RETAIL_RAW_PATH']}\nWarehouse: {env['RETAIL_DUCKDB_PATH']}", flush=True)
    return run_dbt(["build", *dbt_args], env).returncode


def _bench(bench_args: list[str]) -> int:
    from retail_segments.bench import main as bench_main

    return bench_main(bench_args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retail-segments", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "bench"])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="passed on (to dbt for build)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args.rest)
    return _bench(args.rest)


if __name__ == "__main__":
    sys.exit(main())
