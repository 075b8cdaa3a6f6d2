"""Relations in the warehouse that no model of the project defines any more.

dbt never drops a relation whose model was removed or renamed, so an old table stays in the
warehouse and keeps answering queries with figures nobody maintains (for example a model split in
two leaves its old table behind). `orphan_relations` lists the tables and views in the project's
schemas that no node of the dbt manifest (model, seed, snapshot) and no input registration
(``landing``) defines; ``python -m retail_segments build`` reports them after a build and
``make clean-warehouse`` (``python -m retail_segments clean-warehouse``) drops them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_segments.sql import quote_identifier

# Relations no model writes but the project itself does: the prepared inputs (registered by the
# on-run-start hook) and the vars of the last whole build (macros/built_vars.sql).
REGISTERED: frozenset[tuple[str, str]] = frozenset(
    {
        ("landing", "raw_lines"),
        ("landing", "incoming_lines"),
        ("landing", "built_vars"),
        ("landing", "refresh_pending"),
    }
)
SYSTEM_SCHEMAS: frozenset[str] = frozenset({"information_schema", "pg_catalog"})
# Schemas the project used in earlier versions and no longer does (their tables are orphans).
RETIRED_SCHEMAS: frozenset[str] = frozenset({"ops"})
_NODE_TYPES = ("model", "seed", "snapshot")


@dataclass(frozen=True, order=True)
class Orphan:
    """A relation in the warehouse that nothing in the project defines."""

    schema: str
    name: str
    kind: str  # 'table' or 'view'

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def defined_relations(manifest: Path) -> set[tuple[str, str]]:
    """(schema, name) of every model, seed and snapshot of the manifest (names lower case)."""
    nodes = json.loads(manifest.read_text())["nodes"].values()
    return {
        (node["schema"].lower(), (node.get("alias") or node["name"]).lower())
        for node in nodes
        if node["resource_type"] in _NODE_TYPES
    }


def orphan_relations(warehouse: Path, manifest: Path) -> list[Orphan]:
    """Tables and views in the project's schemas (those of the manifest's nodes, ``landing`` and
    retired ones) that no node defines, sorted; empty when the warehouse does not exist."""
    if not warehouse.exists():
        return []
    defined = defined_relations(manifest) | REGISTERED
    schemas = {schema for schema, _ in defined} | RETIRED_SCHEMAS
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "select table_schema, table_name, table_type from information_schema.tables"
            " where table_catalog = current_database()"
        ).fetchall()
    return sorted(
        Orphan(schema, name, "view" if kind == "VIEW" else "table")
        for schema, name, kind in rows
        if schema.lower() in schemas
        and schema.lower() not in SYSTEM_SCHEMAS
        and (schema.lower(), name.lower()) not in defined
        and not name.endswith(("__dbt_tmp", "__dbt_backup"))
    )


def drop_orphans(warehouse: Path, orphans: list[Orphan]) -> None:
    """Drop the given relations (views first, then tables) in one transaction; drop a retired
    schema that is then empty."""
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("begin transaction")
        for orphan in sorted(orphans, key=lambda o: (o.kind != "view", o)):
            connection.execute(
                f"drop {orphan.kind} if exists {quote_identifier(orphan.schema)}"
                f".{quote_identifier(orphan.name)}"
            )
        connection.execute("commit")
        for retired in RETIRED_SCHEMAS:
            left = connection.execute(
                "select count(*) from information_schema.tables where table_schema = ?",
                [retired],
            ).fetchall()[0][0]
            exists = connection.execute(
                "select count(*) from information_schema.schemata where schema_name = ?",
                [retired],
            ).fetchall()[0][0]
            if exists and not left:
                connection.execute(f"drop schema {quote_identifier(retired)}")
