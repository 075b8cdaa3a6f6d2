"""Incremental loading: daily incoming files are cleaned and merged into the loaded lines, returns
in them cancel purchases already loaded, and the result equals a rebuild from scratch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dbt_helpers import Workspace, assert_built, run_prepared_dbt

from retail_segments_dev import reference
from retail_segments_dev.synthetic import RAW_COLUMNS, generate_raw_lines, write_raw_file

pytestmark = pytest.mark.dbt

INCOMING_OFFSET = 1_000_000_000
# The daily files' folders in the loaded fixture: their order is not the files' order.
DAY_FOLDERS = {"day_1": "z_first", "day_2": "a_second"}
SELECTION = [
    "--select",
    "+fct_orders",
    "+dim_customers",
    "+customer_rfm",
    "+cleaning_audit",
    "--indirect-selection",
    "cautious",
]
TABLES = [
    "intermediate.int_sales_lines__screened",
    "intermediate.int_sales_lines__cancellations_matched",
    "marts.fct_sales_lines",
    "marts.fct_orders",
    "marts.dim_customers",
    "marts.customer_rfm",
    "marts.cleaning_audit",
]


def _invoice_boundary(lines: pd.DataFrame, share: float) -> int:
    """First row index at or after ``share`` of the lines where a new invoice starts."""
    index = int(len(lines) * share)
    while lines.InvoiceNo.iat[index] == lines.InvoiceNo.iat[index - 1]:
        index += 1
    return index


@pytest.fixture(scope="module")
def split_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One synthetic history cut into a raw file (80%) and two daily files (10% each). Each daily
    file also repeats a purchase line already loaded (the raw file's last one, one of day 1's),
    older than all its other lines: an exact duplicate across files."""
    lines = generate_raw_lines(n_customers=150, seed=11)
    first, second = _invoice_boundary(lines, 0.8), _invoice_boundary(lines, 0.9)
    purchases = (lines.Quantity > 0) & lines.CustomerID.notna()
    raw_copy = lines.iloc[:first].loc[purchases.iloc[:first]].iloc[[-1]]
    day_1_copy = lines.iloc[first:second].loc[purchases.iloc[first:second]].iloc[[0]]
    day_1 = pd.concat([raw_copy, lines.iloc[first:second]])
    day_2 = pd.concat([lines.iloc[second : second + 5], day_1_copy, lines.iloc[second + 5 :]])
    root = tmp_path_factory.mktemp("incremental")
    # RFM as of the midnight after the raw file's last line, and the customer value's holdout
    # ending there: inside the data of every build
    raw_end = pd.to_datetime(lines.InvoiceDate.iloc[:first], format="%m/%d/%Y %H:%M").max()
    end = raw_end.normalize() + pd.Timedelta(days=1)
    rfm_vars = {
        "rfm_as_of": f"{end:%Y-%m-%d}",
        "clv_calibration_end": f"{end - pd.Timedelta(days=91):%Y-%m-%d}",
    }
    return {
        "vars": json.dumps(rfm_vars),
        "raw": write_raw_file(lines.iloc[:first], root / "raw.csv.zst"),
        "day_1": write_raw_file(day_1, root / "staged" / "2011-11-01.csv.zst"),
        "day_2": write_raw_file(day_2, root / "staged" / "2011-11-02.csv.zst"),
        "incoming": root / "incoming",
    }


@dataclass(frozen=True)
class IncrementalWorkspace(Workspace):
    """A workspace whose builds also read the incoming daily files of ``incoming``."""

    incoming: Path
    vars: str
    # every file of the folder, as by default; the hook skips a hidden .gitkeep too
    pattern: str = "*"

    def run(self, raw: Path, *args: str):
        env = {
            **os.environ,
            "RETAIL_RAW_PATH": str(raw),
            "RETAIL_DUCKDB_PATH": str(self.warehouse),
            "RETAIL_INCOMING_GLOB": str(self.incoming / self.pattern),
        }
        dirs = ["--target-path", str(self.root / "target"), "--log-path", str(self.root / "logs")]
        return run_prepared_dbt(["build", *SELECTION, *args, "--vars", self.vars, *dirs], env)

    def checksums(self) -> dict[str, tuple]:
        return {t: self.query(f"select count(*), sum(hash(t)) from {t} as t")[0] for t in TABLES}


@pytest.fixture(scope="module")
def loaded(split_files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory):
    """Full build on the raw file, then one incremental build per arriving daily file. The
    pattern spans two folders whose order is not the files' (day 1 in z_first/, day 2 in
    a_second/, a symlink to another folder): files sort by name whatever their folder. With
    day 2 comes a plain CSV with only its header (a day without sales), named to sort before the
    loaded day 1: it adds no line, so the build stays incremental (a file with lines sorting
    there would need a rebuild, which the selection refuses)."""
    workspace = IncrementalWorkspace(
        tmp_path_factory.mktemp("incremental_build"),
        split_files["incoming"],
        split_files["vars"],
        pattern="*/*",
    )
    (workspace.incoming / DAY_FOLDERS["day_1"]).mkdir(parents=True)
    # day 2's folder is a symlink to a folder elsewhere, which the hook's glob keeps as written
    (workspace.root / "arrivals").mkdir()
    (workspace.incoming / DAY_FOLDERS["day_2"]).symlink_to(workspace.root / "arrivals")
    (workspace.incoming / DAY_FOLDERS["day_1"] / ".gitkeep").touch()
    assert_built(workspace.run(split_files["raw"]))
    before = workspace.query("select count(*) from marts.fct_sales_lines")[0][0]
    for day, folder in DAY_FOLDERS.items():
        split_files[day].rename(workspace.incoming / folder / split_files[day].name)
        if day == "day_2":
            (workspace.incoming / folder / "2011-10-31.csv").write_text(
                ",".join(RAW_COLUMNS) + "\n"
            )
        assert_built(workspace.run(split_files["raw"]))
        stamp = json.loads((workspace.root / "landing" / "current" / "prepared.json").read_text())
        assert stamp["full_refresh"] is False, stamp["reasons"]
    assert workspace.query("select count(*) from marts.fct_sales_lines")[0][0] > before
    return workspace


def test_incremental_loads_equal_a_rebuild_from_scratch(
    loaded: IncrementalWorkspace, split_files: dict[str, Any]
) -> None:
    incremental = loaded.checksums()
    assert_built(loaded.run(split_files["raw"], "--full-refresh"))
    assert loaded.checksums() == incremental


def _assert_lines_equal_the_reference(workspace: Workspace, files: list[Path]) -> None:
    raw = pd.concat([reference.read_raw(path) for path in files], ignore_index=True)
    raw["source_row_number"] = np.arange(1, len(raw) + 1)
    expected = reference.clean(raw)
    actual = workspace.frame(
        "select invoice_no, stock_code, quantity, quantity_canceled, total_price"
        " from marts.fct_sales_lines order by source_row_number"
    )
    assert actual.invoice_no.tolist() == expected.invoice_no.tolist()
    assert actual.quantity_canceled.tolist() == expected.quantity_canceled.astype(int).tolist()
    np.testing.assert_allclose(actual.total_price, expected.total_price, rtol=1e-9)


def test_incremental_lines_equal_the_reference_on_the_whole_history(
    loaded: IncrementalWorkspace, split_files: dict[str, Any]
) -> None:
    # day 1 then day 2 (file-name order), though day 2's folder sorts first
    days = [loaded.incoming / DAY_FOLDERS[day] / split_files[day].name for day in DAY_FOLDERS]
    files = [split_files["raw"], *days]
    _assert_lines_equal_the_reference(loaded, files)


def test_a_return_cancels_a_purchase_dated_before_it_that_a_later_file_holds(
    split_files: dict[str, Any], tmp_path: Path
) -> None:
    """Returns match purchases by invoice time, not file order: a return in one daily file and a
    purchase of the same customer and product dated before it in a later daily file (what a
    backdated file brings; prepare then rebuilds from scratch) match in a build, as in the
    reference, and the build's tests accept it."""
    lines = generate_raw_lines(n_customers=150, seed=11)
    raw_lines = lines.iloc[: _invoice_boundary(lines, 0.8)]
    goods = ~raw_lines.StockCode.str[0].str.isalpha()
    bought = raw_lines.loc[(raw_lines.Quantity > 0) & raw_lines.CustomerID.notna() & goods]
    template = bought.iloc[[-1]]
    returned = template.assign(
        InvoiceNo="C900001", Quantity=-1, InvoiceDate=pd.Timestamp("2011-12-20 10:00")
    )
    purchase = template.assign(
        InvoiceNo="900002", Quantity=5, InvoiceDate=pd.Timestamp("2011-12-19 10:00")
    )
    workspace = IncrementalWorkspace(tmp_path, tmp_path / "incoming", split_files["vars"])
    files = [
        split_files["raw"],
        write_raw_file(returned, workspace.incoming / "2011-12-20.csv.zst"),
        write_raw_file(purchase, workspace.incoming / "2011-12-21.csv.zst"),
    ]
    assert_built(workspace.run(split_files["raw"]))
    assert workspace.query(
        "select source_row_number, canceled_by_row_number, quantity_canceled"
        " from intermediate.int_sales_lines__cancellations_matched"
        f" where canceled_by_row_number = {INCOMING_OFFSET + 1}"
    ) == [(2 * INCOMING_OFFSET + 1, INCOMING_OFFSET + 1, 1)]
    _assert_lines_equal_the_reference(workspace, files)


def test_returns_in_new_files_cancel_purchases_already_loaded(
    loaded: IncrementalWorkspace,
) -> None:
    rows = loaded.query(
        "select count(*) from intermediate.int_sales_lines__cancellations_matched"
        f" where source_row_number < {INCOMING_OFFSET}"
        f" and canceled_by_row_number > {INCOMING_OFFSET}"
    )
    assert rows[0][0] > 0
    mismatched = loaded.query(
        "select count(*) from marts.fct_sales_lines as lines"
        " join intermediate.int_sales_lines__cancellations_matched as matched"
        " using (source_row_number)"
        " where lines.quantity_canceled <> matched.quantity_canceled"
    )
    assert mismatched[0][0] == 0


def test_lines_identical_to_loaded_ones_are_duplicates(loaded: IncrementalWorkspace) -> None:
    """The repeated lines (first line of day 1, sixth of day 2) are removed as duplicates of the
    lines loaded earlier, as a full build removes them."""
    repeated = loaded.query(
        "select source_row_number % 1000000000, removal_step"
        " from intermediate.int_sales_lines__screened"
        f" where source_row_number > {INCOMING_OFFSET} and removal_step = 2"
        " order by source_row_number"
    )
    assert (1, 2) in repeated and (6, 2) in repeated
