"""skops artifacts: DuckDB BLOB round trip, allowlist enforcement and the registry row."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from retail_segments.ml import artifacts
from retail_segments.ml.artifacts import (
    REGISTRY_COLUMNS,
    UntrustedArtifactError,
    artifact_types,
    build_model_registry_row,
    current_model_version,
    load_model,
    load_registered_model,
    previous_registered_model,
    serialize_model,
)

CREATED_AT = datetime(2024, 1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 365, 200).astype("float64"),
            "frequency": rng.integers(1, 20, 200).astype("float64"),
            "monetary": rng.lognormal(6, 1, 200),
        }
    )
    y = np.where(X["recency_days"] < 100, "loyal", np.where(X["monetary"] > 400, "at risk", "lost"))
    return X, y


@pytest.fixture(scope="module")
def forest(data: tuple[pd.DataFrame, np.ndarray]) -> RandomForestClassifier:
    X, y = data
    return RandomForestClassifier(n_estimators=20, max_depth=5, random_state=42).fit(X, y)


def registry_row(estimator, metrics: dict | None = None) -> pd.DataFrame:
    return build_model_registry_row(
        estimator,
        model_name="segment_classifier",
        metrics=metrics or {"cv_accuracy": 0.9, "test_accuracy": 0.88},
        training_seconds=1.25,
        n_training_rows=200,
        data_window_start="2010-12-01",
        data_window_end="2011-12-09",
        created_at=CREATED_AT,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(n_estimators=10, random_state=42),
        lambda: HistGradientBoostingClassifier(max_iter=20, random_state=42),
    ],
)
def test_artifact_round_trips_through_a_duckdb_blob(
    data: tuple[pd.DataFrame, np.ndarray], make
) -> None:
    X, y = data
    estimator = make().fit(X, y)
    row = registry_row(estimator)
    connection = duckdb.connect()
    connection.register("registry_row", row)
    connection.execute("create table model_registry as select * from registry_row")
    column_types = {
        row[0]: row[1] for row in connection.execute("describe model_registry").fetchall()
    }
    assert column_types["artifact"] == "BLOB"
    assert column_types["created_at"] == "TIMESTAMP"
    blob, version = connection.execute(
        "select artifact, model_version from model_registry"
    ).fetchone()
    connection.close()

    loaded = load_model(bytes(blob))
    assert type(loaded) is type(estimator)
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    assert version == row.at[0, "model_version"]


def test_registry_row_contract(forest: RandomForestClassifier) -> None:
    row = registry_row(forest)
    assert list(row.columns) == list(REGISTRY_COLUMNS)
    assert len(row) == 1
    record = row.iloc[0]
    assert record["model_class"] == "RandomForestClassifier"
    assert json.loads(record["params"])["max_depth"] == 5
    assert json.loads(record["metrics"]) == {"cv_accuracy": 0.9, "test_accuracy": 0.88}
    assert record["sklearn_version"] == sklearn.__version__
    assert record["created_at"] == pd.Timestamp(CREATED_AT)
    assert record["data_window_end"] == pd.Timestamp("2011-12-09")
    assert record["n_training_rows"] == 200
    assert len(record["model_version"]) == 16
    assert isinstance(record["artifact"], bytes)


def test_model_version_is_reproducible_and_content_sensitive(
    data: tuple[pd.DataFrame, np.ndarray], forest: RandomForestClassifier
) -> None:
    X, y = data
    refit = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=42).fit(X, y)
    other = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=7).fit(X, y)
    version = registry_row(forest).at[0, "model_version"]

    assert registry_row(refit).at[0, "model_version"] == version
    assert registry_row(other).at[0, "model_version"] != version
    assert registry_row(forest, {"cv_accuracy": 0.5}).at[0, "model_version"] != version


def test_types_outside_the_allowlist_are_refused(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    svc = SVC().fit(X, y)
    with pytest.raises(UntrustedArtifactError, match=r"sklearn\.svm\._classes\.SVC"):
        load_model(serialize_model(svc))
    log = FunctionTransformer(np.log1p).fit(X)
    with pytest.raises(UntrustedArtifactError, match="FunctionTransformer"):
        load_model(serialize_model(log))


def test_tampered_artifact_is_refused(forest: RandomForestClassifier) -> None:
    blob = serialize_model(forest)
    source = zipfile.ZipFile(io.BytesIO(blob))
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "schema.json":
                schema = json.loads(content)
                schema["__module__"], schema["__class__"] = "os", "system"
                content = json.dumps(schema).encode()
            target.writestr(name, content)
    assert "os.system" in artifact_types(tampered.getvalue())
    with pytest.raises(UntrustedArtifactError, match=r"os\.system"):
        load_model(tampered.getvalue())
    with pytest.raises(UntrustedArtifactError, match="not a readable skops artifact"):
        load_model(b"definitely not a zip archive")


def test_an_explicit_allowlist_can_be_narrower(forest: RandomForestClassifier) -> None:
    blob = serialize_model(forest)
    narrow = frozenset(artifact_types(blob)) - {"sklearn.tree._tree.Tree"}
    with pytest.raises(UntrustedArtifactError, match=r"sklearn\.tree\._tree\.Tree"):
        load_model(blob, allowed_types=narrow)


def test_registered_model_is_found_by_the_version_the_fit_registered(
    forest: RandomForestClassifier,
) -> None:
    """The frames as the dbt models read them: the artifact comes back from DuckDB as a BLOB."""
    connection = duckdb.connect()
    registry = build_model_registry_row(
        forest,
        model_name="segment_classifier",
        metrics={"test_accuracy": 1.0},
        training_seconds=0.1,
        n_training_rows=10,
        data_window_start="2010-12-01",
        data_window_end="2011-12-10",
        created_at="2011-12-10",
    )
    connection.register("registry_rows", registry)
    read_back = connection.sql("select * from registry_rows").df()
    fit = pd.DataFrame({"model_version": registry.model_version})
    version = current_model_version(fit)
    loaded = load_registered_model(read_back, version)
    assert version == registry.model_version.iloc[0]
    assert type(loaded) is RandomForestClassifier
    with pytest.raises(KeyError, match="not in the registry"):
        load_registered_model(read_back, "no-such-version")
    with pytest.raises(ValueError, match="one row in the classifier fit, found 2"):
        current_model_version(pd.concat([fit, fit]))


def test_previous_model_is_the_latest_earlier_window_of_the_registry(
    forest: RandomForestClassifier, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    """No table yet (None) or an empty one -> None; otherwise the latest window strictly before
    the as-of date (the same window is this build's own model, never its predecessor), other
    model names ignored, ties to the smallest version."""
    X, y = data
    other = RandomForestClassifier(n_estimators=5, max_depth=2, random_state=1).fit(X, y)
    third = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=2).fit(X, y)
    where = {"model_name": "segment_classifier"}
    assert previous_registered_model(None, before="2011-12-10", **where) is None

    def row(estimator, window_end: str, name: str = "segment_classifier") -> pd.DataFrame:
        return build_model_registry_row(
            estimator,
            model_name=name,
            metrics={},
            training_seconds=0.1,
            n_training_rows=len(X),
            data_window_start="2010-12-01",
            data_window_end=window_end,
            created_at=window_end,
        )

    rows = pd.concat(
        [
            row(other, "2011-10-01"),
            row(forest, "2011-11-01"),
            row(other, "2011-12-10"),
            row(other, "2011-11-20", name="interest_classifier"),
        ],
        ignore_index=True,
    )
    assert previous_registered_model(rows.iloc[:0], before="2011-12-10", **where) is None
    connection = duckdb.connect()
    connection.register("rows", rows)
    registry = connection.sql(
        "select model_name, model_version, data_window_end, artifact from rows"
    ).df()
    found = previous_registered_model(registry, before="2011-12-10", **where)
    assert found is not None
    assert found.version == rows.model_version.iloc[1]
    np.testing.assert_array_equal(found.estimator.predict(X), forest.predict(X))
    assert (
        previous_registered_model(registry, before="2011-11-01", **where).version
        == (rows.model_version.iloc[0])
    )
    assert previous_registered_model(registry, before="2011-10-01", **where) is None
    # two versions of the same window: the smaller version, whatever the row order
    tied = pd.concat([registry, row(third, "2011-11-01")], ignore_index=True)
    smallest = min(rows.model_version.iloc[1], tied.model_version.iloc[-1])
    for order in (tied, tied.iloc[::-1]):
        assert previous_registered_model(order, before="2011-12-10", **where).version == smallest


def test_artifacts_are_read_one_at_a_time_in_a_process(
    forest: RandomForestClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt runs Python models on several threads of one process, and reading an artifact parses
    numpy's headers with the ast module, whose state CPython 3.11 shares between threads (a Spark
    build failed with "AST constructor recursion depth mismatch"): reads do not overlap."""
    blob = serialize_model(forest)
    read = artifacts.sio.loads
    lock = threading.Lock()
    reading, most = 0, 0

    def watched(*args: object, **kwargs: object) -> object:
        nonlocal reading, most
        with lock:
            reading += 1
            most = max(most, reading)
        time.sleep(0.05)  # long enough for every other thread to arrive
        try:
            return read(*args, **kwargs)
        finally:
            with lock:
                reading -= 1

    monkeypatch.setattr(artifacts.sio, "loads", watched)
    loaded: list[object] = []
    threads = [threading.Thread(target=lambda: loaded.append(load_model(blob))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 4 and most == 1
