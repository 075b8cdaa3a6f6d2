"""Relations no model defines (left behind by removed or renamed models) are listed after a build
and dropped by `make clean-warehouse`, and nothing else is touched."""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess

import duckdb
import pytest
from dbt_helpers import CliInProcess, Workspace, copy_workspace, run_cli, table_checksums

from retail_segments.ops.orphans import Orphan, orphan_relations

pytestmark = pytest.mark.dbt


def test_orphans_are_listed_and_dropped_and_nothing_else(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    workspace = copy_workspace(synthetic_build, tmp_path / "orphans")
    with duckdb.connect(str(workspace.warehouse)) as connection:
        connection.execute("create table ml.ml_segmentation_fit as select 1 as result_table")
        connection.execute("create view marts.stale_summary as select * from marts.cleaning_audit")
        connection.execute("create schema ops")
        connection.execute("create table ops.raw_file_validations (file varchar)")
        connection.execute('create table "ml"."it\'s ""quoted""" (x integer)')
    before = table_checksums(workspace)
    manifest = workspace.root / "target" / "manifest.json"
    expected = [
        Orphan("marts", "stale_summary", "view"),
        Orphan("ml", 'it\'s "quoted"', "table"),
        Orphan("ml", "ml_segmentation_fit", "table"),
        Orphan("ops", "raw_file_validations", "table"),
    ]
    assert orphan_relations(workspace.warehouse, manifest) == expected

    result = run_cli(workspace, synthetic_raw, "clean-warehouse")

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Dropped from" in result.stdout and "ops.raw_file_validations" in result.stdout
    assert orphan_relations(workspace.warehouse, manifest) == []
    after = table_checksums(workspace)
    dropped = {orphan.qualified for orphan in expected}
    assert after == {name: value for name, value in before.items() if name not in dropped}
    schemas = workspace.query("select schema_name from information_schema.schemata")
    assert ("ops",) not in schemas


def test_clean_warehouse_names_a_warehouse_path_it_cannot_clean(
    synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """RETAIL_DUCKDB_PATH naming a folder, or a file that is no DuckDB warehouse: the path and the
    fix, exit code 2, before dbt parses anything."""
    folder = Workspace(tmp_path / "folder")
    folder.warehouse.mkdir(parents=True)
    result = cli_in_process(folder, synthetic_raw, "clean-warehouse")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"RETAIL_DUCKDB_PATH = '{folder.warehouse}' is a directory" in result.stderr
    not_duckdb = Workspace(tmp_path / "csv")
    not_duckdb.root.mkdir()
    not_duckdb.warehouse.write_text("InvoiceNo,StockCode\n1,2\n")
    result = cli_in_process(not_duckdb, synthetic_raw, "clean-warehouse")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"The warehouse {not_duckdb.warehouse} cannot be opened" in result.stderr
    assert "point RETAIL_DUCKDB_PATH at the warehouse this product built" in result.stderr
    assert "nothing was dropped" in result.stderr and "nothing was built" not in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_clean_warehouse_never_drops_by_a_manifest_dbt_parse_did_not_write(
    synthetic_build: Workspace,
    synthetic_raw: Path,
    tmp_path: Path,
    cli_in_process: CliInProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--no-write-json` keeps dbt parse from writing its manifest: a manifest left in the target
    path by an earlier run (here, one that lacks two models) must not make their live tables look
    orphaned. Refused with the fix, exit code 2, and every table is still there. dbt parse stands
    in as it behaves then: it succeeds and writes nothing."""
    from retail_segments.ops import cli

    workspace = copy_workspace(synthetic_build, tmp_path / "stale")
    stale = tmp_path / "stale_target"
    stale.mkdir()
    manifest = json.loads((workspace.root / "target" / "manifest.json").read_text())
    for node in ("model.retail_segments.customer_segments", "model.retail_segments.fct_orders"):
        del manifest["nodes"][node]
    (stale / "manifest.json").write_text(json.dumps(manifest))
    before = table_checksums(workspace)

    def parse_writing_nothing(args: list[str], _env: dict[str, str]) -> CompletedProcess[str]:
        assert args[0] == "parse" and "--no-write-json" in args
        return CompletedProcess(args, 0)

    monkeypatch.setattr(cli, "run_dbt", parse_writing_nothing)
    result = cli_in_process(
        workspace,
        synthetic_raw,
        "clean-warehouse",
        "--no-write-json",
        "--target-path",
        str(stale),
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"`dbt parse` wrote no manifest at {stale / 'manifest.json'}" in result.stderr
    assert "nothing was dropped" in result.stderr and "Traceback" not in result.stderr
    assert table_checksums(workspace) == before
