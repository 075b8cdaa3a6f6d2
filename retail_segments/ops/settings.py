"""Settings checked before anything is built: the project's dbt vars and the environment.

`ProjectVars` declares every var of ``dbt_project.yml`` (its defaults stay there, documented beside
each var): an unknown name or a value of the wrong type or form is refused.
`check_vars_against_data` then checks the dates against the data being built (inside its range,
with enough customers for the fits) and against each other. `check_environment` checks the
``RETAIL_*`` variables.

Every problem becomes a `SettingsError` whose message names the setting, the value and the valid
range or form, so a user's mistake never surfaces as a traceback from inside a model.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError

from retail_segments.ops.paths import names_no_duckdb_file

# Fewest customers with a purchase before rfm_as_of for the segmentation fits: t-SNE's default
# perplexity of 50 needs more than 50 clustered customers, and the 5% outliers are not clustered
# (the whole build passes on 55 customers of the synthetic fixture; 60 leaves a margin).
MIN_SEGMENTED_CUSTOMERS = 60
# Fewest customers who first bought before new_customer_cutoff (the interest clustering and its
# classifier are fitted on them), and fewest who first bought on or after it (they are scored).
MIN_INTEREST_TRAINING_CUSTOMERS = 50
MIN_NEW_CUSTOMERS = 1
# Fewest customers with a purchase before clv_calibration_end for the customer value evaluation,
# and the holdout it scores by default (retail_segments.ml.settings.CustomerValueSettings
# .holdout_days; prepare passes the meta block's value).
MIN_VALUE_CUSTOMERS = 50
# Fewest customers with purchases on two or more days before rfm_as_of and before
# clv_calibration_end: the BG/NBD fit needs repeat purchases and the Gamma-Gamma fit repeat spend
# (on the real file, as of 2010-12-02 there is none and as of 2010-12-03 the few there are give a
# Gamma-Gamma q below 1, an infinite mean spend; from about 20 on the fits are sound).
MIN_VALUE_REPEAT_CUSTOMERS = 20
CLV_HOLDOUT_DAYS = 91

_TIMESTAMP_FORMS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
_TIMESTAMP_HELP = "a date YYYY-MM-DD (midnight) or YYYY-MM-DD HH:MM[:SS]"
_VARS_EXAMPLE = "'{rfm_as_of: 2011-06-01}'"


class SettingsError(ValueError):
    """One or more settings are malformed, out of range or inconsistent."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        super().__init__(
            "Settings that cannot be built; nothing was built or replaced:\n"
            + "\n".join(f"  {problem}" for problem in self.problems)
        )


def _as_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            # YAML reads 2011-06-01T00:00:00+05:00 as an aware datetime
            raise ValueError(
                f"has a time zone; write {_TIMESTAMP_HELP} in the data's own clock, without one"
            )
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        for form in _TIMESTAMP_FORMS:
            try:
                return datetime.strptime(value.strip(), form)
            except ValueError:
                continue
    raise ValueError(f"not {_TIMESTAMP_HELP}")


def _as_share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    if not math.isfinite(value):  # YAML's .nan and .inf
        raise ValueError("not a finite number")
    return float(value)


Timestamp = Annotated[datetime, BeforeValidator(_as_timestamp)]
Share = Annotated[float, BeforeValidator(_as_share), Field(ge=0, le=1)]


class ProjectVars(BaseModel):
    """The dbt vars of this project (defaults and their meaning: ``dbt_project.yml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rfm_as_of: Timestamp = Field(description="RFM and segments as of this moment")
    top_products_n: StrictInt = Field(ge=1, le=10_000, description="rows of eda_top_products")
    new_customer_cutoff: Timestamp = Field(
        description="interest and product fits use lines before it; new customers start on it"
    )
    new_customer_max_orders: StrictInt = Field(
        ge=1,
        le=10,
        description="a new customer's interest is predicted from up to this many orders",
    )
    history_churn_days: StrictInt = Field(
        ge=1, le=3650, description="days without a purchase after which a customer is churned"
    )
    retraining_max_changed_share: Share = Field(
        description="warn when a retrain moves more than this share of customers"
    )
    clv_calibration_end: Timestamp = Field(
        description="the customer value evaluation fits before it and scores the 91 days after"
    )
    clv_monthly_discount_rate: Annotated[float, BeforeValidator(_as_share), Field(ge=0, lt=1)] = (
        Field(description="CLV discount rate per month")
    )


def project_var_defaults(project_root: Path) -> dict[str, Any]:
    """The project's own vars of ``dbt_project.yml``: the global ones, overridden (as dbt does)
    by those under the project's own name; a mapping under another package's name is that
    package's vars (e.g. dbt_project_evaluator's) and is left out."""
    with (project_root / "dbt_project.yml").open() as handle:
        project = yaml.safe_load(handle)
    declared = dict(project.get("vars") or {})
    own = declared.get(project.get("name"))
    return {
        **{name: value for name, value in declared.items() if not isinstance(value, dict)},
        **(own if isinstance(own, dict) else {}),
    }


class _NotAsWrittenError(yaml.constructor.ConstructorError):
    """A number YAML reads as another value than its decimal reading (see `_UniqueKeyLoader`)."""


# A YAML 1.1 integer in plain decimal (optionally with _ between digits): what a user means
_DECIMAL_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader refusing a key given twice in one mapping (it would keep the last), and
    numbers that YAML 1.1 (dbt's reading too) does not read as written in decimal: ``050`` is
    octal 40, ``0b110`` 6, ``0x1F`` 31 and ``1:30`` base 60, i.e. 90."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value: int = super().construct_yaml_int(node)
        if not _DECIMAL_INT.match(str(node.value)):
            raise _NotAsWrittenError(
                None,
                None,
                f"{node.value} is read by YAML (and dbt) as {value}, not as written; write the"
                " number in decimal without leading zeros",
                node.start_mark,
            )
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if ":" in str(node.value):
            raise _NotAsWrittenError(
                None,
                None,
                f"{node.value} is read by YAML (and dbt) as {value}, not as written (base 60);"
                " write the number in decimal",
                node.start_mark,
            )
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the var {key} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_cli_vars(dbt_args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Find ``--vars VALUE`` (or ``--vars=VALUE``) in dbt's arguments; return the parsed vars and
    the other arguments. Raises `SettingsError` for YAML that does not parse to a mapping."""
    rest: list[str] = []
    text: str | None = None
    args = list(dbt_args)
    index = 0
    while index < len(args):
        arg = args[index]
        if (arg == "--vars" or arg.startswith("--vars=")) and text is not None:
            # dbt would keep only the last one
            raise SettingsError(
                [
                    "--vars is given twice; give every var in one mapping, e.g. --vars "
                    + _VARS_EXAMPLE
                ]
            )
        if arg == "--vars":
            if index + 1 >= len(args):
                raise SettingsError([f"--vars needs a value, e.g. --vars {_VARS_EXAMPLE}"])
            text = args[index + 1]
            index += 2
            continue
        if arg.startswith("--vars="):
            text = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        index += 1
    if text is None:
        return {}, rest
    try:
        parsed = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except _NotAsWrittenError as error:
        raise SettingsError([f"--vars {text!r}: {error.problem}"]) from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem", None) or "not YAML"
        raise SettingsError(
            [f"--vars {text!r} does not parse ({mark}); write it as YAML, e.g. {_VARS_EXAMPLE}"]
        ) from error
    except ValueError as error:
        # YAML reads an unquoted 2011-13-01 as a date, which does not exist
        raise SettingsError(
            [
                f"--vars {text!r} holds a date that does not exist ({error}); write"
                f" {_TIMESTAMP_HELP}, e.g. {_VARS_EXAMPLE}"
            ]
        ) from error
    if parsed is None:
        return {}, rest
    if not isinstance(parsed, dict):
        raise SettingsError(
            [f"--vars {text!r} is not a mapping; write it as YAML, e.g. {_VARS_EXAMPLE}"]
        )
    return parsed, rest


def check_vars(values: Mapping[str, Any]) -> ProjectVars:
    """Validate the effective vars (defaults overlaid with ``--vars``); raise `SettingsError` naming
    each bad var, its value and what it must be."""
    try:
        return ProjectVars(**values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = ".".join(str(part) for part in item["loc"]) or "vars"
            if item["type"] == "extra_forbidden":
                known = ", ".join(ProjectVars.model_fields)
                problems.append(f"var {name} is not a setting of this project; known vars: {known}")
                continue
            value = values.get(name, item.get("input"))
            message = str(item["msg"]).removeprefix("Value error, ")
            valid = _valid_range(name)
            problems.append(
                f"var {name} = {_shown(value)}: {message}" + (f"; valid: {valid}" if valid else "")
            )
        raise SettingsError(problems) from None


def _valid_range(name: str) -> str | None:
    """The values a numeric var takes, from its bounds in `ProjectVars` (None for other vars)."""
    field = ProjectVars.model_fields.get(name)
    if field is None:
        return None
    bounds = {
        key: getattr(item, key)
        for item in field.metadata
        for key in ("ge", "gt", "le", "lt")
        if getattr(item, key, None) is not None
    }
    if not bounds:
        return None
    words = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}
    kind = "an integer" if field.annotation is int else "a number"
    return f"{kind} " + " and ".join(f"{words[key]} {value:,}" for key, value in bounds.items())


def var_text(value: Any) -> str:
    """A var's value as dbt renders it with ``{{ var(name) }}`` (for the prepared-build stamp)."""
    return str(value)


@dataclass(frozen=True)
class DataFacts:
    """What the settings are checked against: the time range of every input line, each
    customer's first purchase and each repeat customer's first purchase on their second purchase
    day (calendar day, the customer value's purchase day), for the fits' minimum sizes."""

    first_invoice_at: datetime
    last_invoice_at: datetime
    customer_first_purchases: Sequence[datetime]
    customer_second_purchase_days: Sequence[datetime]

    @property
    def end_of_data(self) -> datetime:
        """Midnight after the last invoice's day: the latest as-of moment inside the data."""
        last = self.last_invoice_at
        return datetime(last.year, last.month, last.day) + timedelta(days=1)

    def customers_before(self, moment: datetime, *, repeat: bool = False) -> int:
        """Customers who bought before ``moment`` (``repeat``: on two or more days)."""
        moments = self.customer_second_purchase_days if repeat else self.customer_first_purchases
        return sum(1 for first in moments if first < moment)

    def earliest_with(self, n_customers: int, *, repeat: bool = False) -> datetime | None:
        """The first midnight before which at least n_customers have bought (``repeat``: on two
        or more days), if any."""
        moments = self.customer_second_purchase_days if repeat else self.customer_first_purchases
        ordered = sorted(moments)
        if len(ordered) < n_customers:
            return None
        moment = ordered[n_customers - 1]
        return datetime(moment.year, moment.month, moment.day) + timedelta(days=1)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _shown(value: Any) -> str:
    """A var's value as the user wrote it: YAML reads an unquoted 2011-06-01 as a date, which is
    shown as '2011-06-01', not as Python's datetime.date(2011, 6, 1)."""
    if isinstance(value, date):
        return repr(str(value))
    return repr(value)


def check_vars_against_data(
    settings: ProjectVars,
    raw: Mapping[str, Any],
    facts: DataFacts,
    *,
    fits: bool = True,
    holdout_days: int = CLV_HOLDOUT_DAYS,
) -> None:
    """Check the date vars against the data (``fits=False`` when the run fits no model, e.g. a
    backfill month, so only the range applies; ``holdout_days``: the customer value evaluation's
    holdout, ``ml_customer_value_fit``'s ``meta.value.holdout_days``). Raises `SettingsError`
    with every problem."""
    problems: list[str] = []
    start, end = facts.first_invoice_at, facts.end_of_data
    valid = (
        f"valid: after the first invoice ({_fmt(start)}) up to {_fmt(end)}"
        " (the midnight after the last)"
    )
    # a var outside the data is not checked further, the other vars are: every problem at once
    outside: set[str] = set()
    for name in ("rfm_as_of", "new_customer_cutoff", "clv_calibration_end"):
        moment: datetime = getattr(settings, name)
        if moment <= start:
            problems.append(
                f"var {name} = {_shown(raw[name])} is not after the data starts; {valid}"
            )
        elif moment > end:
            problems.append(f"var {name} = {_shown(raw[name])} is after the data ends; {valid}")
        else:
            continue
        outside.add(name)
    if not fits:
        if problems:
            raise SettingsError(problems)
        return
    repeaters = "customers with purchases on two or more days"
    minimums = (
        (
            "rfm_as_of",
            MIN_SEGMENTED_CUSTOMERS,
            False,
            "customers with a purchase",
            "the segmentation",
        ),
        ("rfm_as_of", MIN_VALUE_REPEAT_CUSTOMERS, True, repeaters, "the customer value fit"),
        (
            "new_customer_cutoff",
            MIN_INTEREST_TRAINING_CUSTOMERS,
            False,
            "customers who first bought",
            "the interest fit",
        ),
        (
            "clv_calibration_end",
            MIN_VALUE_CUSTOMERS,
            False,
            "customers with a purchase",
            "the customer value evaluation",
        ),
        (
            "clv_calibration_end",
            MIN_VALUE_REPEAT_CUSTOMERS,
            True,
            repeaters,
            "the customer value evaluation",
        ),
    )
    for name, minimum, repeat, who, fit in minimums:
        if name in outside:
            continue
        found = facts.customers_before(getattr(settings, name), repeat=repeat)
        if found < minimum:
            earliest = facts.earliest_with(minimum, repeat=repeat)
            where = f"valid: from {_fmt(earliest)} on" if earliest else "the data has too few"
            problems.append(
                f"var {name} = {_shown(raw[name])} leaves {found} {who} before it; {fit} needs"
                f" at least {minimum}; {where}"
            )
    n_new = len(facts.customer_first_purchases) - facts.customers_before(
        settings.new_customer_cutoff
    )
    if n_new < MIN_NEW_CUSTOMERS and "new_customer_cutoff" not in outside:
        last_first = max(facts.customer_first_purchases, default=start)
        problems.append(
            f"var new_customer_cutoff = {_shown(raw['new_customer_cutoff'])} leaves no customer who"
            f" first bought on or after it to evaluate the new-customer prediction on; valid: up to"
            f" {_fmt(last_first)} (the last first purchase)"
        )
    holdout_end = settings.clv_calibration_end + timedelta(days=holdout_days)
    if holdout_end > end and "clv_calibration_end" not in outside:
        latest = end - timedelta(days=holdout_days)
        earliests = (
            facts.earliest_with(MIN_VALUE_CUSTOMERS),
            facts.earliest_with(MIN_VALUE_REPEAT_CUSTOMERS, repeat=True),
        )
        earliest = None if None in earliests else max(e for e in earliests if e is not None)
        if earliest is None or latest < earliest:
            valid = (
                f"no value is valid for this data ({_fmt(start)} to {_fmt(end)}): the evaluation"
                f" needs {MIN_VALUE_CUSTOMERS} customers ({MIN_VALUE_REPEAT_CUSTOMERS} of them"
                " with purchases on two or more days) before clv_calibration_end and"
                f" {holdout_days} days of data after it; build a file that covers more time, or"
                " shorten the holdout (ml_customer_value_fit meta value.holdout_days)"
            )
        else:
            valid = f"valid: up to {_fmt(latest)} ({holdout_days} days before {_fmt(end)})"
        problems.append(
            f"var clv_calibration_end = {_shown(raw['clv_calibration_end'])} leaves a holdout"
            f" that ends {_fmt(holdout_end)}, after the data ends; {valid}"
        )
    if problems:
        raise SettingsError(problems)


# ---------------------------------------------------------------------------------------------
# the fits' meta blocks
# ---------------------------------------------------------------------------------------------


def model_meta_blocks(project_root: Path) -> dict[str, dict[str, Any]]:
    """The ``config.meta`` of every model declared in the project's model ymls, by model name."""
    # libyaml's loader (as dbt's): the same documents as yaml.safe_load, nine times faster here
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    blocks: dict[str, dict[str, Any]] = {}
    for path in sorted((project_root / "models").rglob("*.yml")):
        with path.open() as handle:
            document = yaml.load(handle, Loader=loader) or {}
        for node in document.get("models") or []:
            meta = (node.get("config") or {}).get("meta")
            if meta is not None:
                blocks[node["name"]] = meta
    return blocks


@dataclass(frozen=True)
class CheckedMeta:
    """What `check_model_meta` found: each fit's parsed settings (``{model: {key: settings}}``,
    defaults filled in), and what was checked of each meta block for the prepared stamp: its keys
    other than the var-fed ones (``passthrough``) as sorted JSON. The dbt hook renders the same
    from the parsed project, so a meta block edited after `prepare` stops a plain `dbt build`
    instead of reaching a fit unchecked."""

    settings: dict[str, dict[str, Any]]
    fingerprints: list[dict[str, Any]]


def check_model_meta(project_root: Path) -> CheckedMeta:
    """Validate the meta block of every dbt Python model that has settings
    (`retail_segments.ml.MODEL_META`): unknown keys, mistyped or out-of-range values. Raises
    `SettingsError` naming ``<model>.meta.<key>``, the value and the rule."""
    from retail_segments.ml.config import ConfigError, parse_meta
    from retail_segments.ml.settings import MODEL_META

    problems: list[str] = []
    checked = CheckedMeta({}, [])
    blocks = model_meta_blocks(project_root)
    for model, (settings, passthrough) in MODEL_META.items():
        meta = blocks.get(model) or {}
        if not isinstance(meta, Mapping):
            problems.append(f"{model}.meta = {meta!r}: must be a mapping")
            continue
        own = {key: value for key, value in meta.items() if key not in passthrough}
        try:
            checked.settings[model] = parse_meta(own, settings, model=model)
        except ConfigError as error:
            problems.extend(str(error).splitlines())
        checked.fingerprints.append(
            {
                "model": model,
                "passthrough": sorted(passthrough),
                "json": json.dumps(own, sort_keys=True),
            }
        )
    if problems:
        raise SettingsError(problems)
    return checked


# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
_UNIT_BYTES = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
MIN_MEMORY_BYTES = 256 * 10**6


def memory_bytes(text: str) -> int | None:
    """Parse a DuckDB memory size such as ``6GB`` or ``512 MiB``; None when it is not one."""
    match = _MEMORY.match(text)
    if not match:
        return None
    return int(float(match.group(1)) * _UNIT_BYTES[match.group(2).upper()])


def _machine_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_environment(environ: Mapping[str, str]) -> None:
    """Check the ``RETAIL_*`` variables that are set (paths are checked where they are used);
    raise `SettingsError` naming each bad variable, its value and the valid form."""
    problems: list[str] = []
    limit = environ.get("RETAIL_DUCKDB_MEMORY_LIMIT")
    if limit is not None:
        size = memory_bytes(limit)
        machine = _machine_memory_bytes()
        upper = f" up to this machine's {machine / 2**30:.1f} GiB" if machine else ""
        valid = f"valid: a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), 256MB{upper}"
        if size is None:
            problems.append(f"RETAIL_DUCKDB_MEMORY_LIMIT = {limit!r} is not a memory size; {valid}")
        elif size < MIN_MEMORY_BYTES or (machine is not None and size > machine):
            problems.append(f"RETAIL_DUCKDB_MEMORY_LIMIT = {limit!r} is out of range; {valid}")
    for name in (
        "RETAIL_RAW_PATH",
        "RETAIL_DUCKDB_PATH",
        "RETAIL_SERVING_DIR",
        "RETAIL_LANDING_DIR",
    ):
        value = environ.get(name)
        # empty is not unset: an empty RETAIL_RAW_PATH would quietly build the default file
        if value is not None and not value.strip():
            problems.append(f"{name} is set but empty; unset it or give a path")
    warehouse = environ.get("RETAIL_DUCKDB_PATH")
    if warehouse and names_no_duckdb_file(warehouse):
        problems.append(
            f"RETAIL_DUCKDB_PATH = {warehouse!r} is not a file path (the build and its serving"
            " copy need a DuckDB file on this machine); give one, e.g. /data/retail_segments.duckdb"
        )
    elif warehouse and ("'" in Path(warehouse).stem or '"' in Path(warehouse).stem):
        # DuckDB names the database after the file, and dbt-duckdb quotes that name unescaped
        plain = Path(warehouse).stem.replace("'", "").replace('"', "")
        problems.append(
            f"RETAIL_DUCKDB_PATH = {warehouse!r}: dbt-duckdb cannot build a database whose file"
            " name holds a quote (' or \"; a folder may); rename the file, e.g."
            f" {Path(warehouse).with_stem(plain)}"
        )
    elif warehouse and Path(warehouse).expanduser().is_dir():
        problems.append(
            f"RETAIL_DUCKDB_PATH = {warehouse!r} is a directory; give the DuckDB file to build,"
            " e.g. /data/retail_segments.duckdb"
        )
    for name in ("RETAIL_SERVING_DIR", "RETAIL_LANDING_DIR"):
        value = environ.get(name)
        if value and Path(value).expanduser().is_file():
            problems.append(f"{name} = {value!r} is a file; give a directory (it is created)")
    incoming = environ.get("RETAIL_INCOMING_GLOB")
    if incoming is not None and not incoming.strip():
        problems.append("RETAIL_INCOMING_GLOB is set but empty; unset it or give a pattern")
    elif incoming and Path(incoming).expanduser().is_dir():
        problems.append(
            f"RETAIL_INCOMING_GLOB = {incoming!r} is a directory; give a pattern of files,"
            f" e.g. {incoming.rstrip('/')}/*.csv.zst"
        )
    if problems:
        raise SettingsError(problems)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_yaml_float)
