"""Model artifacts: skops serialisation with an explicit type allowlist, and registry rows.

``load_model`` never trusts an artifact blindly. It reads every type named in the artifact's
schema (the ``__module__``/``__class__`` pairs of skops' ``schema.json``, which is how skops
itself records what it will construct) plus everything ``skops.io.get_untrusted_types`` reports,
and raises ``UntrustedArtifactError`` naming each type outside ``ALLOWED_TYPES``. Only then is the
blob loaded, trusting exactly the untrusted types skops reported, all of which were just checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pandas as pd
import sklearn
import skops.io as sio
from sklearn.base import BaseEstimator

ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        # containers and scalars
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "builtins.tuple",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.uint64",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        # random forest
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        # gradient boosting
        "sklearn.dummy.DummyClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        # histogram gradient boosting
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.preprocessing._label.LabelEncoder",
        # embedding pipeline (PCA)
        "sklearn.decomposition._pca.PCA",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
    }
)

REGISTRY_COLUMNS: tuple[str, ...] = (
    "model_name",
    "model_version",
    "artifact",
    "model_class",
    "params",
    "metrics",
    "training_seconds",
    "data_window_start",
    "data_window_end",
    "n_training_rows",
    "sklearn_version",
    "created_at",
)


class UntrustedArtifactError(ValueError):
    """An artifact is unreadable or contains types outside the allowlist."""


def serialize_model(estimator: BaseEstimator) -> bytes:
    """Serialise a fitted estimator with ``skops.io.dumps`` (never pickle) and return the bytes."""
    return sio.dumps(estimator)


def _schema_types(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
            yield f"{node['__module__']}.{node['__class__']}"
        for value in node.values():
            yield from _schema_types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_types(value)


def artifact_types(blob: bytes) -> list[str]:
    """List every type an artifact would construct, as sorted unique 'module.Class' strings.

    Raises ``UntrustedArtifactError`` if ``blob`` is not a readable skops archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            schema = json.loads(archive.read("schema.json"))
        untrusted = sio.get_untrusted_types(data=blob)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as error:
        raise UntrustedArtifactError(f"not a readable skops artifact: {error}") from error
    return sorted(set(_schema_types(schema)) | set(untrusted))


def load_model(blob: bytes, allowed_types: frozenset[str] = ALLOWED_TYPES) -> Any:
    """Load an artifact made by ``serialize_model`` after checking its types.

    Parameters
    ----------
    blob : skops bytes (e.g. the ``artifact`` BLOB of ``model_registry``).
    allowed_types : 'module.Class' names that may be constructed; ``ALLOWED_TYPES`` by default.

    Returns
    -------
    The estimator. Raises ``UntrustedArtifactError`` naming the offending types if any type in the
    artifact is outside ``allowed_types``, or if the blob is not a skops archive.
    """
    offending = [name for name in artifact_types(blob) if name not in allowed_types]
    if offending:
        raise UntrustedArtifactError(f"artifact contains types outside the allowlist: {offending}")
    return sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    return value


def to_json(values: Mapping[str, Any]) -> str:
    """Serialise a flat mapping as canonical JSON text (sorted keys, numpy scalars as numbers,
    nested estimators by class name, anything else not JSON-native via ``str``)."""
    return json.dumps(
        {str(key): _plain(value) for key, value in values.items()}, sort_keys=True, default=str
    )


def model_version(blob: bytes, metadata: Mapping[str, Any]) -> str:
    """Deterministic version of a model: 16 hex digits of a SHA-256.

    skops archives are not byte-reproducible (member names and zip timestamps vary between
    ``dumps`` calls), so the hash is taken over (a) the canonical JSON of ``metadata`` and (b) the
    sorted SHA-256 digests of the archive's array members (``.npy`` files: the fitted state).
    The same data, parameters and library versions therefore give the same version on a rebuild.
    """
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        arrays = sorted(
            hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if name.endswith(".npy")
        )
    digest = hashlib.sha256(to_json(metadata).encode())
    for array_digest in arrays:
        digest.update(array_digest.encode())
    return digest.hexdigest()[:16]


def build_model_registry_row(
    estimator: BaseEstimator,
    *,
    model_name: str,
    metrics: Mapping[str, Any],
    training_seconds: float,
    n_training_rows: int,
    data_window_start: date | datetime | str,
    data_window_end: date | datetime | str,
    created_at: datetime | str,
) -> pd.DataFrame:
    """Build the one-row ``model_registry`` frame for a fitted estimator.

    Parameters
    ----------
    estimator : the fitted model; serialised with ``serialize_model`` into ``artifact`` (bytes,
        a DuckDB BLOB).
    model_name : registry name, e.g. 'segment_classifier'.
    metrics : JSON-able metrics (e.g. cv/test accuracy). Keep wall-clock times out of it: it
        feeds ``model_version``.
    training_seconds : wall-clock fit time (not part of the version).
    n_training_rows : rows the estimator was fitted on.
    data_window_start, data_window_end : first and last invoice date of the training data.
    created_at : timestamp supplied by the caller (not ``now()``), so rebuilds are reproducible.

    Returns
    -------
    DataFrame with ``REGISTRY_COLUMNS``; ``params`` and ``metrics`` are JSON text,
    ``model_version`` is ``model_version(artifact, ...)`` over name, class, params, metrics, data
    window, training rows and sklearn version; timestamps are datetime64.
    """
    blob = serialize_model(estimator)
    model_class = type(estimator).__name__
    params = to_json(estimator.get_params(deep=False))
    metrics_json = to_json(metrics)
    window_start = pd.Timestamp(data_window_start)
    window_end = pd.Timestamp(data_window_end)
    version = model_version(
        blob,
        {
            "model_name": model_name,
            "model_class": model_class,
            "params": params,
            "metrics": metrics_json,
            "data_window_start": window_start.isoformat(),
            "data_window_end": window_end.isoformat(),
            "n_training_rows": int(n_training_rows),
            "sklearn_version": sklearn.__version__,
        },
    )
    return pd.DataFrame(
        {
            "model_name": pd.Series([model_name], dtype="str"),
            "model_version": pd.Series([version], dtype="str"),
            "artifact": pd.Series([blob], dtype="object"),
            "model_class": pd.Series([model_class], dtype="str"),
            "params": pd.Series([params], dtype="str"),
            "metrics": pd.Series([metrics_json], dtype="str"),
            "training_seconds": pd.Series([float(training_seconds)], dtype="float64"),
            "data_window_start": pd.Series([window_start]),
            "data_window_end": pd.Series([window_end]),
            "n_training_rows": pd.Series([int(n_training_rows)], dtype="int64"),
            "sklearn_version": pd.Series([sklearn.__version__], dtype="str"),
            "created_at": pd.Series([pd.Timestamp(created_at)]),
        },
        columns=list(REGISTRY_COLUMNS),
    )


def current_model_version(fit: duckdb.DuckDBPyRelation) -> str:
    """The model version this build trained: the ``model_version`` of the ``model_registry`` row
    in a stacked classifier-fit relation (``ml_segment_classifier_fit``)."""
    rows = fit.filter("result_table = 'model_registry'").project("model_version").fetchall()
    if len(rows) != 1:
        raise ValueError(f"expected one registry row in the classifier fit, found {len(rows)}")
    return str(rows[0][0])


def load_registered_model(registry: duckdb.DuckDBPyRelation, version: str) -> Any:
    """Load the estimator of ``version`` from a ``model_registry`` relation through
    ``load_model`` (the type allowlist). Raises ``KeyError`` if the version is not registered."""
    rows = (
        registry.filter(f"model_version = '{version.replace(chr(39), '')}'")
        .project("artifact")
        .fetchall()
    )
    if not rows:
        raise KeyError(f"model version {version!r} is not in the registry")
    return load_model(rows[0][0])


class RegisteredModel(NamedTuple):
    """A model loaded from the registry: its version and the estimator."""

    version: str
    estimator: Any


def previous_registered_model(
    connection: duckdb.DuckDBPyConnection,
    *,
    database: str,
    schema: str,
    model_name: str,
    before: date | datetime | str,
) -> RegisteredModel | None:
    """The registered model of the latest data window that ends strictly before ``before``.

    Reads ``"database"."schema".model_registry`` directly: the segmentation fit that asks for
    the previous model is upstream of the registry in the DAG, so it cannot ``ref`` it. Returns
    ``None`` when the registry does not exist yet (first build, or after ``--full-refresh``) or
    holds no earlier window. Several versions of that window (possible when parameters changed
    between builds of the same data) resolve to the smallest ``model_version``, so the choice is
    deterministic. The estimator is loaded through ``load_model`` (type allowlist).
    """
    exists = connection.execute(
        "select count(*) from information_schema.tables"
        " where table_catalog = ? and table_schema = ? and table_name = 'model_registry'",
        [database, schema],
    ).fetchall()[0][0]
    if not exists:
        return None
    rows = connection.execute(
        f'select model_version, artifact from "{database}"."{schema}".model_registry'
        " where model_name = ? and data_window_end < cast(? as timestamp)"
        " order by data_window_end desc, model_version limit 1",
        [model_name, pd.Timestamp(before).to_pydatetime()],
    ).fetchall()
    if not rows:
        return None
    version, blob = rows[0]
    return RegisteredModel(str(version), load_model(blob))
