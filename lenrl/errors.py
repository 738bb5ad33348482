"""User-facing errors.

A `LenrlError` carries a one-line message that says what is wrong and where (file, line, config key).
The command-line entry points catch it and print `lenrl: error: <message>` without a traceback.
"""

import sys
from collections.abc import Callable


class LenrlError(Exception):
    """Bad input from the user: config, data file, model path, cluster address."""


def exit_code_of(command: Callable[[], int]) -> int:
    """Run a command-line entry point: bad input (a LenrlError, also one raised inside a Ray actor, which
    arrives wrapped with the original as `.cause`) becomes one line on stderr and exit status 2."""
    try:
        return command()
    except LenrlError as e:
        print(f"lenrl: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, LenrlError):
            print(f"lenrl: error: {cause}", file=sys.stderr)
            return 2
        raise
