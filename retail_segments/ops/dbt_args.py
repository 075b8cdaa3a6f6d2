"""What the dbt arguments (and dbt's environment variables) a user gives `build` ask of dbt, read
the way dbt's command line reads them, so that the checks before dbt runs see what dbt will do:
a repeated option counts by its last value, ``--opt=value``, ``--opt value``, ``-o value`` and
``-ovalue`` are one option, and an environment variable counts where no option is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    if value is None and variable and environ and environ.get(variable):
        value = environ[variable]
    return value


def dbt_target(dbt_args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The dbt target dbt will use: the last ``--target``/``-t`` in dbt_args, else
    ``DBT_TARGET``, else None (the profile's default)."""
    return option_value(dbt_args, "--target", "-t", environ=environ, variable="DBT_TARGET")


def has_selection(dbt_args: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether dbt will run on part of the project only (any `SELECTION_OPTIONS` in dbt_args, in
    any spelling, or any `SELECTION_VARIABLES` set)."""
    for arg in dbt_args:
        if any(_matches(arg, option) is not None for option in SELECTION_OPTIONS):
            return True
    return any(environ.get(variable, "").strip() for variable in SELECTION_VARIABLES)
