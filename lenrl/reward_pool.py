"""Worker processes that run tasks one at a time, each task under its own timeout.

Why processes: math-verify can hang on adversarial LaTeX (power towers, thousands of nested braces), its
`signal.alarm` timeouts work only on a process's main thread, which the driver (running Ray threads)
cannot offer, and a computation stuck inside C code (a huge integer power) ignores signals anyway. Each
worker runs one task at a time on its main thread; the driver knows when every task started, so a task
that runs past `timeout_s` is reported as timed out, its worker killed and replaced, and the other tasks
go on. Workers use the "spawn" context because forking a process that runs threads is unsafe.

A worker runs `warmup(*warmup_args)` once before taking tasks (imports, a first verification), so
start-up time never counts against a task's timeout. Tasks and results travel pickled by value (plain
`pickle`), not through torch's shared-memory reducers, whose segments would leak when a worker is killed.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from lenrl.errors import LenrlError

START_TIMEOUT_S = 300.0  # a worker that cannot import torch and the plugins in this long is stuck


@dataclass(frozen=True)
class TaskResult:
    """value: what the task returned; error: None, or one line saying how it failed; timed_out: the
    task ran past its timeout (error says so too)."""

    value: Any = None
    error: str | None = None
    timed_out: bool = False


def one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def _serve(conn: Connection, warmup: Callable[..., None], warmup_args: tuple) -> None:
    """Worker main loop: warm up, then (fn, args) -> ("ok", value) | ("error", message) until None."""
    try:
        warmup(*warmup_args)
    except BaseException as e:
        conn.send_bytes(pickle.dumps(("fail", one_line(e))))
        return
    conn.send_bytes(pickle.dumps(("ready", None)))
    while True:
        task = pickle.loads(conn.recv_bytes())
        if task is None:
            return
        fn, args = task
        try:
            reply = ("ok", fn(*args))
        except Exception as e:
            reply = ("error", one_line(e))
        conn.send_bytes(pickle.dumps(reply))


class _Worker:
    def __init__(self, ctx: Any, warmup: Callable[..., None], warmup_args: tuple):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, warmup, warmup_args), daemon=True)
        self.proc.start()
        child.close()
        self.born = time.monotonic()
        self.ready = False
        self.task: int | None = None  # index of the task it runs
        self.started = 0.0  # when that task was sent

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class TaskPool:
    """`num_workers` spawned processes; `run(fn, args_list, timeout_s)` runs fn(*args) for each args,
    `timeout_s` per task counted from the moment a ready worker takes it."""

    def __init__(self, num_workers: int, warmup: Callable[..., None], warmup_args: tuple = ()):
        self.num_workers = max(1, num_workers)
        self.warmup, self.warmup_args = warmup, warmup_args
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []

    @property
    def started(self) -> bool:
        return bool(self._workers)

    def run(self, fn: Callable[..., Any], args_list: Sequence[tuple], timeout_s: float) -> list[TaskResult]:
        results: list[TaskResult | None] = [None] * len(args_list)
        todo = deque(range(len(args_list)))
        try:
            while todo or any(w.task is not None for w in self._workers):
                while len(self._workers) < self.num_workers:
                    self._workers.append(_Worker(self._ctx, self.warmup, self.warmup_args))
                for w in self._workers:
                    if w.ready and w.task is None and todo:
                        w.task, w.started = todo.popleft(), time.monotonic()
                        w.conn.send_bytes(pickle.dumps((fn, args_list[w.task])))
                self._wait(timeout_s)
                self._collect(results)
                self._expire(results, timeout_s)
        except BaseException:
            self.close(kill=True)  # a start failure or an interrupt: never leave half-busy workers behind
            raise
        return [r if r is not None else TaskResult(error="lost") for r in results]

    def _wait(self, timeout_s: float) -> None:
        busy = [w for w in self._workers if w.task is not None or not w.ready]
        if busy:
            deadline = min(w.started + timeout_s if w.ready else w.born + START_TIMEOUT_S for w in busy)
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], max(0.0, deadline - time.monotonic()))

    def _collect(self, results: list[TaskResult | None]) -> None:
        for w in list(self._workers):
            try:
                msg = pickle.loads(w.conn.recv_bytes()) if w.conn.poll() else None
            except (EOFError, OSError):
                msg = ("died", None)
            if msg is None and not w.proc.is_alive() and not w.conn.poll():
                msg = ("died", None)
            if msg is None:
                continue
            kind, value = msg
            if kind == "ready":
                w.ready = True
            elif kind in ("ok", "error") and w.task is not None:
                results[w.task] = TaskResult(value=value) if kind == "ok" else TaskResult(error=f"failed: {value}")
                w.task = None
            elif kind == "fail" or not w.ready:
                why = value if kind == "fail" else f"a worker exited with code {w.proc.exitcode} while starting"
                raise LenrlError(f"reward workers failed to start: {why}")
            else:  # died while running a task (killed for memory, a crash in C code): that task failed
                if w.task is not None:
                    results[w.task] = TaskResult(error=f"failed: its worker died (exit code {w.proc.exitcode})")
                self._replace(w)

    def _expire(self, results: list[TaskResult | None], timeout_s: float) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            if w.task is not None and now - w.started > timeout_s:
                results[w.task] = TaskResult(error=f"timed out after {timeout_s:g}s", timed_out=True)
                self._replace(w)
            elif not w.ready and now - w.born > START_TIMEOUT_S:
                raise LenrlError(f"reward workers failed to start: none was ready after {START_TIMEOUT_S:g}s")

    def _replace(self, w: _Worker) -> None:
        # A hung worker never returns: kill it and start a fresh one now, so it warms up (untimed) while
        # the others work.
        w.kill()
        self._workers[self._workers.index(w)] = _Worker(self._ctx, self.warmup, self.warmup_args)

    def close(self, kill: bool = False) -> None:
        for w in self._workers:
            if not kill and w.ready and w.task is None and w.proc.is_alive():
                try:
                    w.conn.send_bytes(pickle.dumps(None))
                    w.proc.join(timeout=5)
                except OSError:
                    pass
            w.kill()
        self._workers = []
