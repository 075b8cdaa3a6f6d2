"""The serving copy of a Spark build: the same files a DuckDB build publishes.

The published set is declared in dbt (`retail_segments.ops.publish.published_relations`). Each
published table is read from its Parquet directory (``<tables>/<schema>/<name>/``) into a scratch
DuckDB file, created as its dbt contract declares it (column types, NOT NULL, primary key, table
and column descriptions as comments: what dbt-duckdb's DDL gives the DuckDB warehouse), and that
file is published by `retail_segments.ops.publish.publish` exactly as a DuckDB build's warehouse
is: the DuckDB serving copy and one Parquet file per mart, swapped in atomically. So BI tools, the
report and MetricFlow read a Spark build as they read a DuckDB one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from retail_segments.ops.publish import Relation
from retail_segments.sql import quote_identifier, string_literal


def contract_nodes(manifest: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The manifest's model nodes keyed by (schema, alias)."""
    nodes = json.loads(manifest.read_text())["nodes"]
    return {
        (node["schema"], node["alias"]): node
        for node in nodes.values()
        if node.get("resource_type") == "model"
    }


def table_ddl(relation: Relation, node: dict[str, Any]) -> tuple[str, list[str]]:
    """``create table`` for relation as its contract declares it, and the ``comment on``
    statements of its description and column descriptions."""
    name = f"{quote_identifier(relation.schema)}.{quote_identifier(relation.name)}"
    definitions, comments = [], []
    for column in node["columns"].values():
        kinds = {constraint["type"] for constraint in column.get("constraints", [])}
        definition = f"{quote_identifier(column['name'])} {column['data_type']}"
        if "not_null" in kinds:
            definition += " not null"
        if "primary_key" in kinds:
            definition += " primary key"
        elif "unique" in kinds:
            definition += " unique"
        definitions.append(definition)
        if column.get("description"):
            comments.append(
                f"comment on column {name}.{quote_identifier(column['name'])}"
                f" is {string_literal(column['description'])}"
            )
    for constraint in node.get("constraints", []):
        if constraint["type"] in ("primary_key", "unique"):
            columns = ", ".join(quote_identifier(column) for column in constraint["columns"])
            definitions.append(f"{constraint['type'].replace('_', ' ')} ({columns})")
    if node.get("description"):
        comments.insert(0, f"comment on table {name} is {string_literal(node['description'])}")
    return f"create table {name} ({', '.join(definitions)})", comments


def mirror_tables(
    tables_root: Path, manifest: Path, relations: Sequence[Relation], target: Path
) -> list[str]:
    """Write the DuckDB file target holding every relation found under tables_root, each as its
    contract declares it (`table_ddl`), its rows read from the table's Parquet files; return the
    ``schema.name`` of the relations that have no table there."""
    nodes = contract_nodes(manifest)
    missing = []
    target.unlink(missing_ok=True)
    with duckdb.connect(str(target)) as connection:
        connection.execute("set enable_progress_bar = false")
        connection.execute("set TimeZone = 'UTC'")
        for relation in relations:
            directory = tables_root / relation.schema / relation.name
            files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
            node = nodes.get((relation.schema, relation.name))
            if not files or node is None:
                missing.append(relation.qualified)
                continue
            create, comments = table_ddl(relation, node)
            connection.execute(f"create schema if not exists {quote_identifier(relation.schema)}")
            connection.execute(create)
            columns = ", ".join(
                f"cast({quote_identifier(column['name'])} as {column['data_type']})"
                for column in node["columns"].values()
            )
            connection.execute(
                f"insert into {quote_identifier(relation.schema)}.{quote_identifier(relation.name)}"
                f" select {columns} from read_parquet($files)",
                {"files": [str(path) for path in files]},
            )
            for statement in comments:
                connection.execute(statement)
    return missing
