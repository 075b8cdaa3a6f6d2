"""What the dbt arguments (and dbt's environment variables) a user gives `build` ask of dbt, read
the way dbt's command line reads them, so that the checks before dbt runs see what dbt will do:
a repeated option counts by its last value, ``--opt=value``, ``--opt value``, ``-o value`` and
``-ovalue`` are one option, and an environment variable counts where no option is given, under
its ``DBT_ENGINE_`` name before its ``DBT_`` one (dbt 1.11: dbt/cli/params.py, EngineEnvVar). A
default selector in the project's ``selectors.yml`` limits a run given no selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

# dbt's options that limit a run to part of the project (dbt/cli/params.py: select_decls,
# model_decls, exclude, selector, resource_type, exclude_resource_type); short ones may carry
# their value attached (-sNAME)
SELECTION_OPTIONS = (
    "--select",
    "-s",
    "--models",
    "--model",
    "-m",
    "--exclude",
    "--selector",
    "--resource-type",
    "--resource-types",
    "--exclude-resource-type",
    "--exclude-resource-types",
)
# dbt's environment variables that do the same
SELECTION_VARIABLES = ("DBT_RESOURCE_TYPES", "DBT_EXCLUDE_RESOURCE_TYPES")
ENGINE_PREFIX = "DBT_ENGINE_"


def env_setting(environ: Mapping[str, str], variable: str) -> tuple[str, str] | None:
    """The environment variable dbt reads for ``variable`` (a ``DBT_`` name) and its value:
    ``DBT_ENGINE_<name>`` when set and not empty, else ``variable``; None when neither is."""
    for name in (variable.replace("DBT_", ENGINE_PREFIX, 1), variable):
        if environ.get(name, "").strip():
            return name, environ[name]
    return None


def env_flag(environ: Mapping[str, str], variable: str) -> str | None:
    """The name of the variable that turns a dbt flag on (true, 1, yes, on, ...; see
    `env_setting`), or None."""
    setting = env_setting(environ, variable)
    if setting and setting[1].strip().lower() in ("true", "1", "t", "y", "yes", "on"):
        return setting[0]
    return None


def default_selector(project_root: Path) -> str | None:
    """The name of the selector ``selectors.yml`` marks ``default: true`` (dbt then runs only
    what it selects when given no selection), or None."""
    try:
        document = yaml.safe_load((project_root / "selectors.yml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    for selector in (document or {}).get("selectors") or []:
        if isinstance(selector, dict) and selector.get("default") is True:
            return str(selector.get("name"))
    return None


def _matches(arg: str, option: str) -> str | None:
    """The value attached to arg when arg is option with its value (``--opt=value``, or
    ``-ovalue`` for a short option), "" when arg is the option alone, None otherwise."""
    if arg == option:
        return ""
    if option.startswith("--"):
        return arg[len(option) + 1 :] if arg.startswith(option + "=") else None
    return arg[len(option) :] if arg.startswith(option) and not arg.startswith("--") else None


def option_value(
    dbt_args: Sequence[str],
    *options: str,
    environ: Mapping[str, str] | None = None,
    variable: str = "",
) -> str | None:
    """The value dbt takes for an option spelt as any of ``options``: the last one given, else
    the environment ``variable`` when set and not empty, else None."""
    value = None
    index = 0
    while index < len(dbt_args):
        for option in options:
            attached = _matches(dbt_args[index], option)
            if attached is None:
                continue
            if attached:
                value = attached
            elif index + 1 < len(dbt_args):
                value = dbt_args[index + 1]
                index += 1
            break
        index += 1
    if value is None and variable and environ:
        setting = env_setting(environ, variable)
        value = setting[1] if setting else None
    return value


def dbt_target(dbt_args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The dbt target dbt will use: the last ``--target``/``-t`` in dbt_args, else
    ``DBT_ENGINE_TARGET`` or ``DBT_TARGET``, else None (the profile's default)."""
    return option_value(dbt_args, "--target", "-t", environ=environ, variable="DBT_TARGET")


def has_selection(
    dbt_args: Sequence[str], environ: Mapping[str, str], project_root: Path | None = None
) -> bool:
    """Whether dbt will run on part of the project only: any `SELECTION_OPTIONS` in dbt_args, in
    any spelling, any `SELECTION_VARIABLES` set (under either name), or a default selector in
    project_root's selectors.yml."""
    for arg in dbt_args:
        if any(_matches(arg, option) is not None for option in SELECTION_OPTIONS):
            return True
    if any(env_setting(environ, variable) for variable in SELECTION_VARIABLES):
        return True
    return project_root is not None and default_selector(project_root) is not None
