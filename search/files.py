"""Files the command lines read and write: JSON with one-line errors, and the modes new files get."""

from __future__ import annotations

import json
import os
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


def umask() -> int:
    """The process's umask (os.umask can only be read by setting it): what a plain open or mkdir leaves out."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
