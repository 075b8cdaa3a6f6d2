"""What the dbt arguments (and dbt's environment variables) a user gives `build` ask of dbt, read
by dbt's own command line (its click command for ``dbt build``), so that the checks before dbt
runs see exactly what dbt will do: a repeated option counts by its last value, short options may
be joined (``-qs NAME``) or carry their value (``-tNAME``), and an environment variable counts
where no option is given, under its ``DBT_ENGINE_`` name before its ``DBT_`` one (dbt 1.11). A
default selector in the project's ``selectors.yml`` limits a run given no selection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# dbt's parameters (of `dbt build`) that limit a run to part of the project
SELECTION_PARAMS = (
    "select",
    "models",
    "exclude",
    "selector",
    "resource_types",
    "exclude_resource_types",
)


class DbtArgsError(ValueError):
    """dbt's command line would refuse these arguments (its own message)."""


@contextmanager
def _environment(environ: Mapping[str, str]) -> Iterator[None]:
    """os.environ set to environ while dbt's parser reads its variables (click reads os.environ)."""
    wanted, saved = dict(environ), dict(os.environ)  # environ may be os.environ itself
    os.environ.clear()
    os.environ.update(wanted)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class DbtBuildArgs:
    """The parameters ``dbt build`` takes from the arguments and the environment, as dbt's parser
    gives them, and the ways each can be set (for messages)."""

    params: Mapping[str, Any]
    spellings: Mapping[str, str]
    # the parameters given (on the command line or by a variable), not dbt's defaults
    given: frozenset[str]
    # how each given parameter was given: "VARIABLE='value'" or "--option on the command line"
    given_by: Mapping[str, str]

    @classmethod
    def parse(cls, dbt_args: Sequence[str], environ: Mapping[str, str]) -> DbtBuildArgs:
        """Parse like ``dbt build <dbt_args>`` with environ (or like ``dbt <command> ...`` when
        dbt_args start with one of dbt's commands, as a hand-run dbt's do); raises
        `DbtArgsError`."""
        import click
        from dbt.cli.main import cli

        from retail_segments.ops.paths import ProjectNotFoundError, find_project_root

        name = "build"
        if dbt_args and dbt_args[0] in cli.commands:
            name, dbt_args = dbt_args[0], dbt_args[1:]
        try:
            # as dbt is run (`retail_segments.ops.dbt_runner.run_dbt`): on the project, with its
            # profiles.yml, given last. Without them dbt's parser looks for profiles.yml in the
            # working directory, else in ~/.dbt, and refused a run started in a subfolder
            root = str(find_project_root(environ=environ))
            dbt_args = [*dbt_args, "--project-dir", root, "--profiles-dir", root]
        except ProjectNotFoundError:
            pass
        command = cli.commands[name]
        with _environment(environ):
            try:
                parent = cli.make_context("dbt", [], resilient_parsing=True)
                context = command.make_context(name, list(dbt_args), parent=parent)
            except click.ClickException as error:
                raise DbtArgsError(error.format_message()) from error
            except ValueError as error:
                # dbt's --vars callback reads YAML, whose date constructor raises for a date
                # that does not exist ({rfm_as_of: 2011-02-30}); `prepare` names it with the fix
                raise DbtArgsError(str(error)) from error
        given = frozenset(
            param
            for param in context.params
            if (source := context.get_parameter_source(param)) is not None
            and source.name in ("COMMANDLINE", "ENVIRONMENT")
        )
        spellings, given_by = {}, {}
        for param in command.params:
            if param.name is None:
                continue
            options = [*param.opts, *getattr(param, "secondary_opts", [])]
            envvar = param.envvar
            variables = [envvar] if isinstance(envvar, str) else list(envvar or [])
            spellings[param.name] = ", ".join(options + variables)
            source = context.get_parameter_source(param.name)
            if source is not None and source.name == "ENVIRONMENT":
                # dbt reads its variables in this order (DBT_ENGINE_<name> first)
                variable = next((name for name in variables if name in environ), None)
                if variable is not None:
                    given_by[param.name] = f"{variable}={environ[variable]!r}"
            elif source is not None and source.name == "COMMANDLINE":
                given_by[param.name] = "/".join(options) + " on the command line"
        return cls(dict(context.params), spellings, given, given_by)

    def value(self, name: str) -> Any:
        return self.params.get(name)

    def spelled(self, name: str) -> str:
        """How a parameter is given: its options and dbt's variables for it."""
        return self.spellings.get(name, name)

    def given_as(self, name: str) -> str:
        """How a parameter was given, for a message: the variable with its value, or its
        command-line options; all its spellings when it was not given."""
        return self.given_by.get(name, self.spelled(name))

    def selection(self) -> list[str]:
        """The selection parameters that are set."""
        return [name for name in SELECTION_PARAMS if self.params.get(name)]


def _parsed(dbt_args: Sequence[str], environ: Mapping[str, str]) -> DbtBuildArgs | None:
    try:
        return DbtBuildArgs.parse(dbt_args, environ)
    except DbtArgsError:
        return None  # dbt refuses them itself; `prepare` says so before it runs


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


def dbt_target(dbt_args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The dbt target dbt will use (``--target``/``-t``, ``DBT_ENGINE_TARGET``, ``DBT_TARGET``),
    or None: the profile's default (or arguments dbt refuses)."""
    parsed = _parsed(dbt_args, environ)
    return None if parsed is None else parsed.value("target")


def has_selection(
    dbt_args: Sequence[str], environ: Mapping[str, str], project_root: Path | None = None
) -> bool:
    """Whether dbt will run on part of the project only: a selection parameter set in any
    spelling (`SELECTION_PARAMS`, from the arguments or dbt's variables), or a default selector
    in project_root's selectors.yml. Arguments dbt refuses count as a selection (nothing runs)."""
    parsed = _parsed(dbt_args, environ)
    if parsed is None or parsed.selection():
        return True
    return project_root is not None and default_selector(project_root) is not None
