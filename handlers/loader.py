"""Import the user's handler modules (`SUPRHOOK_HANDLERS`), which register themselves with `@on`."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Iterable

from .errors import ConfigError


def load_handler_modules(modules: Iterable[str]) -> None:
    """Import each module (from the working directory too); importing registers its handlers, nothing else."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # handler modules usually live in the project being served
        sys.path.insert(0, cwd)
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"SUPRHOOK_HANDLERS: cannot import {name!r}: {exc}") from exc
