"""Bad input ends a command with one clear line naming the file and the problem, not a traceback."""
from __future__ import annotations

import contextlib
import sys

from vadflow.data.types import DataError


@contextlib.contextmanager
def friendly_errors():
    try:
        yield
    except DataError as exc:
        print(f"vadflow: error: {exc}", file=sys.stderr)
        sys.exit(2)
