"""What the command lines share: a user's mistake becomes one line on stderr and exit code 2."""

from __future__ import annotations

import sys
from typing import Union

# What a user can cause: a bad path or file (OSError, ValueError) or an unknown word (KeyError).
USER_ERRORS = (ValueError, KeyError, OSError)


def error_message(error: Union[BaseException, str]) -> str:
    """One line for ``error``: its message without quotes, traceback or line breaks.

    >>> error_message(KeyError("'zzz' is not in the vocabulary"))
    "'zzz' is not in the vocabulary"
    >>> error_message(FileNotFoundError(2, "No such file or directory", "v.bin"))
    'v.bin: No such file or directory'
    """
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    elif isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error)
    return " ".join(text.split())


def fail(error: Union[BaseException, str]) -> int:
    """Print ``error: <message>`` on stderr; return the exit code for user errors, 2."""
    print(f"error: {error_message(error)}", file=sys.stderr)
    return 2
