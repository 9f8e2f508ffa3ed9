"""What the command lines share: a user's mistake becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Callable, Optional, Union

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


class UsageError(ValueError):
    """A malformed command line (:class:`ArgumentParser`)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors raise :class:`UsageError`, so that ``main`` reports them as one line.

    argparse itself prints the usage and exits; here a mistake reads like every other one
    (``error: argument --topn: ...``, exit code 2) and ``main(argv)`` returns instead of exiting.
    """

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def whole_number(minimum: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number ``>= minimum`` written in digits (``1e12`` is refused).

    >>> whole_number(1)("10")
    10
    """

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}{meaning} in digits, got {text!r}")
        return value

    return parse


def to_json(obj: Any, indent: Optional[int] = None) -> str:
    """``json.dumps`` that writes NaN and infinities as ``null`` (JSON has no such numbers).

    >>> to_json({"cosine": float("nan"), "rank": [1.5, float("inf")]})
    '{"cosine": null, "rank": [1.5, null]}'
    """
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
