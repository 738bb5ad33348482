"""User-facing errors and interruptions.

A `LenrlError` carries a one-line message that says what is wrong and where (file, line, config key).
The command-line entry points catch it and print `lenrl: error: <message>` without a traceback (exit 2).
A `RunFailed` (the run broke down mid-way) prints `lenrl: run failed: <message>` (exit 1).
SIGTERM (what `kill`, `ray job stop` and schedulers send) and SIGINT arrive as an `Interrupted`
exception, so that cleanup runs exactly as for an error: a half-made run directory is removed, Ray is
shut down, reward workers are killed.
"""

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class LenrlError(Exception):
    """Bad input from the user: config, data file, model path, cluster address."""


class RunFailed(Exception):
    """The run cannot go on (a learner died, updates stayed non-finite): the message names the last good
    checkpoint to continue from."""


class WorkerDied(RuntimeError):
    """A Ray actor the run depends on died (raised by lenrl/workers/groups.py, so the loop needs no ray)."""


class Interrupted(KeyboardInterrupt):
    """The process received `signum` (SIGTERM or SIGINT); raised in the main thread by the handler."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The signals received so far: a library between the handler and `exit_code_of` may catch the
# `Interrupted` and raise a plain KeyboardInterrupt instead (losing its signal number).
_RECEIVED: list[int] = []
# Inside `deferred_interrupts`: the signals that arrived and wait for the block's end.
_DEFERRED: list[list[int]] = []


def interrupt_on_signals() -> None:
    """Turn SIGTERM and SIGINT into `Interrupted` in the main thread. The first signal restores the
    default handlers, so a second one stops the process at once even if cleanup hangs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _RECEIVED.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if _DEFERRED:
            _DEFERRED[-1].append(signum)
            return
        raise Interrupted(signum)

    if threading.current_thread() is threading.main_thread():  # signal.signal works only there
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, handler)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold a SIGTERM/SIGINT that arrives inside the block until it ends, then raise it as `Interrupted`.

    For work that must finish whole or not start (the training loop's update, weight push, log line and
    checkpoint of one step: lenrl/trainer/loop.py), so an interruption always lands between steps. The first
    signal restores the default handlers (as outside the block), so a second one still stops at once."""
    _DEFERRED.append([])
    try:
        yield
    finally:
        held = _DEFERRED.pop()
    if held:
        raise Interrupted(held[0])


def exit_code_of(command: Callable[[], int]) -> int:
    """Run a command-line entry point: bad input (a LenrlError, also one raised inside a Ray actor, which
    arrives wrapped with the original as `.cause`) becomes one line on stderr and exit status 2; an
    interruption, one line and 128 + the signal number (the shell's convention)."""
    try:
        return command()
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else (_RECEIVED[-1] if _RECEIVED else signal.SIGINT)
        print(f"lenrl: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except LenrlError as e:
        print(f"lenrl: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"lenrl: run failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, LenrlError):
            print(f"lenrl: error: {cause}", file=sys.stderr)
            return 2
        raise
