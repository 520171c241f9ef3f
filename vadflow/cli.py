"""Bad input ends a command with one clear line naming the file and the problem, not a traceback.

``friendly_errors`` turns the data and config errors a command raises into that line (exit 2);
``hydra_command`` does the same for the mistakes Hydra finds while composing the config: an
unknown group option (with the known ones), a key that does not exist (with the close ones), a
mandatory value not given. ``HYDRA_FULL_ERROR=1`` still shows Hydra's full traceback.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import os
import sys
from typing import Callable

from vadflow.data.types import DataError


@contextlib.contextmanager
def friendly_errors():
    try:
        yield
    except DataError as exc:
        print(f"vadflow: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # a mandatory value not given, a config value a constructor refuses
        line = missing_value_line(exc) or instantiation_line(exc)
        if line is None:
            raise
        print(f"vadflow: error: {line}", file=sys.stderr)
        sys.exit(2)


def missing_value_line(exc: BaseException) -> str | None:
    from omegaconf.errors import MissingMandatoryValue

    if not isinstance(exc, MissingMandatoryValue):
        return None
    key = getattr(exc, "full_key", None) or str(exc).split(":")[-1].strip()
    return f"{key} is required: pass {key}=..."


def instantiation_line(exc: BaseException) -> str | None:
    """The constructor's own complaint behind a Hydra InstantiationException (ValueError/TypeError)."""
    from hydra.errors import InstantiationException

    if not isinstance(exc, InstantiationException):
        return None
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    if not isinstance(cause, (ValueError, TypeError)):
        return None
    return f"cannot build the config: {str(cause).splitlines()[0]}"


def _node_keys(config_name: str, path: str) -> list[str]:
    """The keys of ``path``'s parent node in the config composed with the command's valid overrides."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vadflow.config import CONF_DIR

    groups = [a for a in sys.argv[1:] if "=" in a and "." not in a.split("=", 1)[0] and not a.startswith(("+", "~", "-"))]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=groups)
        node = OmegaConf.select(cfg, path.rsplit(".", 1)[0]) if "." in path else cfg
        return [str(k) for k in node.keys()] if hasattr(node, "keys") else []
    except Exception:  # noqa: BLE001 - only a hint
        return []


def hydra_error_line(exc: BaseException, config_name: str) -> str | None:
    """One line for a mistake Hydra found while composing; None for anything else."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        return f"unknown {group or 'config'} {name!r} (known: {', '.join(exc.options)})"
    if isinstance(exc, ConfigCompositionException) and str(exc).startswith("Could not override '"):
        key = str(exc).split("'")[1]
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, _node_keys(config_name, key), n=3)
        parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
        hint = f" (did you mean {', '.join(parent + c for c in close)}?)" if close else ""
        return f"config key {key} does not exist{hint}"
    if isinstance(exc, OverrideParseException):
        return f"cannot read the command-line overrides: {str(exc).strip().splitlines()[0]}"
    if isinstance(exc, ConfigCompositionException):
        return str(exc).strip().splitlines()[0]
    return missing_value_line(exc) or instantiation_line(exc)


def hydra_command(task: Callable, config_name: str) -> Callable:
    """The console entry of a ``@hydra.main`` task: Hydra's composition errors as one line, exit 2."""

    @functools.wraps(task)
    def entry():
        user_asked = os.environ.get("HYDRA_FULL_ERROR") == "1"
        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing its own report
        try:
            return task()
        except Exception as exc:
            line = None if user_asked else hydra_error_line(exc, config_name)
            if line is None:
                raise
            print(f"vadflow: error: {line}", file=sys.stderr)
            sys.exit(2)
        finally:
            if not user_asked:
                os.environ.pop("HYDRA_FULL_ERROR", None)

    return entry
