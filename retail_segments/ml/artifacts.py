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
import threading
import zipfile
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, NamedTuple

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


# One artifact is read at a time in a process. Reading parses numpy's array headers with
# ast.literal_eval, and CPython 3.11 keeps the AST constructor's recursion count in state the
# whole interpreter shares (python/cpython#106905): dbt runs Python models on several threads of
# one process (on DuckDB, and on Spark's session method), and two reads at once failed a Spark
# build with "SystemError: AST constructor recursion depth mismatch".
_READ_LOCK = threading.Lock()


def load_model(blob: bytes, allowed_types: frozenset[str] = ALLOWED_TYPES) -> Any:
    """Load an artifact made by ``serialize_model`` after checking its types (one load at a time
    in a process: ``_READ_LOCK``).

    Parameters
    ----------
    blob : skops bytes (e.g. the ``artifact`` BLOB of ``model_registry``).
    allowed_types : 'module.Class' names that may be constructed; ``ALLOWED_TYPES`` by default.

    Returns
    -------
    The estimator. Raises ``UntrustedArtifactError`` naming the offending types if any type in the
    artifact is outside ``allowed_types``, or if the blob is not a skops archive.
    """
    with _READ_LOCK:
        offending = [name for name in artifact_types(blob) if name not in allowed_types]
        if offending:
            raise UntrustedArtifactError(
                f"artifact contains types outside the allowlist: {offending}"
            )
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


def current_model_version(fit: pd.DataFrame) -> str:
    """The model version this build trained: ``model_version`` of the classifier fit's one row
    (``ml_segment_classifier_fit``, read as a frame). Raises ``ValueError`` unless there is
    exactly one row."""
    if len(fit) != 1:
        raise ValueError(f"expected one row in the classifier fit, found {len(fit)}")
    return str(fit["model_version"].iloc[0])


def registered_artifact(registry: pd.DataFrame, version: str) -> bytes:
    """The skops bytes of ``version`` in ``model_registry`` rows (a frame with ``model_version``
    and ``artifact``). Raises ``KeyError`` if the version is not registered."""
    rows = registry.loc[registry["model_version"] == version, "artifact"]
    if rows.empty:
        raise KeyError(f"model version {version!r} is not in the registry")
    return bytes(rows.iloc[0])


def load_registered_model(registry: pd.DataFrame, version: str) -> Any:
    """Load the estimator of ``version`` from ``model_registry`` rows (a frame with
    ``model_version`` and ``artifact``) through ``load_model`` (the type allowlist). Raises
    ``KeyError`` if the version is not registered."""
    return load_model(registered_artifact(registry, version))


_LOADED: dict[str, Any] = {}


def cached_model(artifact: bytes) -> Any:
    """``load_model(artifact)``, loaded once per process (keyed by the bytes' SHA-256): a
    scoring function called batch after batch, in this process or in a Spark Python worker,
    loads the estimator once."""
    key = hashlib.sha256(artifact).hexdigest()
    if key not in _LOADED:
        _LOADED[key] = load_model(artifact)
    return _LOADED[key]


class RegisteredModel(NamedTuple):
    """A model loaded from the registry: its version and the estimator."""

    version: str
    estimator: Any


def previous_registered_model(
    registry: pd.DataFrame | None,
    *,
    model_name: str,
    before: date | datetime | str,
) -> RegisteredModel | None:
    """The registered model of the latest data window that ends strictly before ``before``.

    Parameters
    ----------
    registry : rows of ``model_registry`` (``model_name``, ``model_version``,
        ``data_window_end``, ``artifact``), or None when the table does not exist yet (first
        build, or after ``--full-refresh``). The segmentation fit that asks for the previous
        model is upstream of the registry in the DAG, so its dbt model reads the table directly
        rather than through ``ref`` (a cycle) and passes the rows here.
    model_name : registry name to look for, e.g. 'segment_classifier'.
    before : the as-of moment of the new fit; the same window is that fit's own model, never its
        predecessor.

    Returns
    -------
    ``RegisteredModel`` or None when there is no earlier window. Several versions of that window
    (possible when parameters changed between builds of the same data) resolve to the smallest
    ``model_version``, so the choice is deterministic. The estimator is loaded through
    ``load_model`` (type allowlist).
    """
    if registry is None or registry.empty:
        return None
    rows = registry.assign(_window_end=pd.to_datetime(registry["data_window_end"]))
    earlier = rows.loc[
        (rows["model_name"] == model_name) & (rows["_window_end"] < pd.Timestamp(before))
    ]
    if earlier.empty:
        return None
    chosen = earlier.sort_values(
        ["_window_end", "model_version"], ascending=[False, True], kind="stable"
    ).iloc[0]
    return RegisteredModel(str(chosen["model_version"]), load_model(bytes(chosen["artifact"])))
