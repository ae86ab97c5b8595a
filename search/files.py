"""JSON files the command line reads (space files, an experiment's recorded settings), with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainables import InputError


def read_json(path: Path, *, missing: str, unreadable: str) -> Any:
    """The parsed file; else an InputError saying ``missing``, or ``unreadable: <the reason>``."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(missing) from None
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{unreadable}: {err}") from None
