"""Settings of the fits as declared models: each ``meta`` block of a dbt Python model
(``models/ml/<feature>/_<feature>__models.yml``) is validated by a pydantic model that lists every
key with its type, bounds, default and meaning. An unknown or mistyped key is refused with the
block's name, the key, the value and what it must be (`SettingsModel.parse`).

Shared field types live here, so that a rule (an integer k range, a share in (0, 1]) is written
once for every feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
)


class ConfigError(ValueError):
    """A meta block of a dbt model holds a key or value its settings model refuses."""


_K_RANGE_RULE = "must be [k_min, k_max], two whole numbers with 2 <= k_min <= k_max"


def _k_range(value: object) -> tuple[int, int]:
    """Check the whole range at once, so a bad one gives one message, not one per element."""
    valid = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 2 <= value[0] <= value[1]
    )
    if not valid:
        raise ValueError(_K_RANGE_RULE)
    return (value[0], value[1])  # type: ignore[index]


# A strictly typed finite number: an int is accepted where a float is expected; a bool, text, NaN
# or infinity never.
Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]
# An inclusive [k_min, k_max] range of cluster counts, 2 <= k_min <= k_max.
KRange = Annotated[tuple[int, int], BeforeValidator(_k_range)]
# A share in (0, 1].
Share = Annotated[Number, Field(gt=0, le=1)]
# A seed of a random generator.
Seed = Annotated[StrictInt, Field(ge=0)]
# OpenMP/BLAS threads for a fit (threadpoolctl); null leaves the library's default.
Threads = Annotated[StrictInt, Field(ge=1)] | None
Flag = StrictBool
# Fewest customers a fit sample may hold (SamplingSettings.sample_size).
MIN_SAMPLE_SIZE = 100


class SettingsModel(BaseModel):
    """Base of every settings model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, values: Mapping[str, Any] | None, *, name: str) -> Self:
        """Validate values (a meta block, None for all defaults); raise `ConfigError` naming the
        block (name), every bad key, its value and the rule it breaks."""
        try:
            return cls(**dict(values or {}))
        except ValidationError as error:
            raise ConfigError(describe(error, name, cls)) from None

    def as_dict(self) -> dict[str, Any]:
        """The complete settings, defaults filled in, as a plain dict."""
        return self.model_dump()


class SamplingSettings(SettingsModel):
    """The fit sample of a customer fit (``meta.sampling``): at most ``sample_size`` customers,
    stratified by their recency, frequency and monetary quantile cells and drawn reproducibly
    (``segmentation.fit_sample_mask``); the others are assigned. The default 5,000 exceeds the
    real file's 4,372 customers, so there everyone is fitted."""

    sample_size: Annotated[StrictInt, Field(ge=MIN_SAMPLE_SIZE)] = Field(
        5_000, description="most customers the fit is trained on"
    )
    random_state: Seed = Field(42, description="seed of the draw")
    strata_bins: Annotated[StrictInt, Field(ge=1)] = Field(
        5, description="quantile bins per R, F and M; the strata are their cells"
    )


# pydantic's words for the strict number types, as a user reads them
_RULES = {
    "Input should be a valid integer": "must be a whole number",
    "Input should be a valid number": "must be a number",
    "Input should be a valid boolean": "must be true or false",
}


def describe(error: ValidationError, name: str, model: type[BaseModel]) -> str:
    """One line per bad key of a pydantic error: the block, the key, the value and the rule (the
    rules of a key's alternatives, e.g. an integer or a float, joined with 'or')."""
    messages: dict[str, list[str]] = {}
    values: dict[str, object] = {}
    unknown: list[str] = []
    for item in error.errors():
        key = str(item["loc"][0]) if item["loc"] else "(block)"
        if item["type"] == "extra_forbidden":
            unknown.append(key)
            continue
        message = _RULES.get(str(item["msg"]), str(item["msg"]).removeprefix("Value error, "))
        if message not in messages.setdefault(key, []):
            messages[key].append(message)
        values.setdefault(key, item.get("input"))
    lines = [
        f"{name}: unknown key {key!r}; allowed keys are {sorted(model.model_fields)}"
        for key in unknown
    ]
    for key, rules in messages.items():
        if {"must be a whole number", "must be a number"} <= set(rules):
            rules = [rule for rule in rules if rule != "must be a whole number"]
        lines.append(f"{name}: key {key!r} = {values[key]!r}: {' or '.join(rules)}")
    return "\n".join(lines)


_Settings = TypeVar("_Settings", bound=SettingsModel)


def parse_meta(
    meta: Mapping[str, Any] | None,
    settings: Mapping[str, type[SettingsModel]],
    *,
    model: str,
) -> dict[str, SettingsModel]:
    """Validate the ``meta`` block of a dbt model whose keys each hold one settings block.

    Parameters
    ----------
    meta : the model's ``config.meta`` (None or empty for all defaults).
    settings : the settings model of every allowed meta key (a module's ``SETTINGS``, or part of
        it).
    model : the dbt model's name, for the messages (``<model>.meta.<key>``).

    Returns
    -------
    ``{key: parsed settings}`` for every key of ``settings``, defaults where the block is absent.
    Raises `ConfigError` naming an unknown meta key, a block that is not a mapping, or every bad
    key of a block.
    """
    blocks = dict(meta or {})
    unknown = sorted(set(blocks) - set(settings))
    if unknown:
        raise ConfigError(
            f"{model}.meta: unknown key(s) {unknown}; allowed keys are {sorted(settings)}"
        )
    for key, block in blocks.items():
        if block is not None and not isinstance(block, Mapping):
            raise ConfigError(
                f"{model}.meta.{key} = {block!r}: must be a mapping of settings, e.g. {{}}"
            )
    return {
        key: model_type.parse(blocks.get(key), name=f"{model}.meta.{key}")
        for key, model_type in settings.items()
    }


def as_settings(
    model_type: type[_Settings],
    values: Mapping[str, Any] | SettingsModel | None,
    *,
    name: str,
) -> _Settings:
    """``values`` as ``model_type``: settings already parsed are returned as they are, a mapping
    of overrides (None = every default) is parsed (`SettingsModel.parse`, named ``name``).
    Raises ``TypeError`` for settings of another model."""
    if isinstance(values, model_type):
        return values
    if isinstance(values, SettingsModel):
        raise TypeError(f"{name}: expected {model_type.__name__}, got {type(values).__name__}")
    return model_type.parse(values, name=name)
