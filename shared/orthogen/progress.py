"""Progress of a long run, reported to whoever is listening: the samplers' steps and the stages around them.

A sampler's step loop goes through :func:`steps` (a tqdm bar on a terminal, as before) and a server that
runs a bundle in a worker thread listens with :func:`listening` (the label app's generation jobs, polled by
the OHIF viewer). The listener is held in a :class:`contextvars.ContextVar`, so each thread (each job) hears
only its own run and nothing changes for a run nobody listens to. Hand-written: tqdm's callbacks are per bar
and cannot reach a listener set up by the caller of a bundle run.
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

__all__ = ["ProgressListener", "listening", "stage", "steps"]

#: Called with (stage, step, total): the stage in words, the steps done (0 when a stage starts), the
#: stage's number of steps (0 when it has none).
ProgressListener = Callable[[str, int, int], None]

_listener: contextvars.ContextVar[ProgressListener | None] = contextvars.ContextVar("orthogen_progress", default=None)


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    """Send this context's (this thread's) progress to ``listener`` while the block runs."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def stage(name: str) -> None:
    """A stage without steps starts (e.g. "storing the series")."""
    listener = _listener.get()
    if listener is not None:
        listener(name, 0, 0)


def steps(iterable: Iterable, total: int, desc: str, disable: bool | None = None) -> Iterator:
    """``iterable`` (``total`` items) as a stage named ``desc``: each item reported once done, and shown as
    a tqdm bar (``disable``: tqdm's, None shows it on a terminal only)."""
    listener = _listener.get()
    if listener is not None:
        listener(desc, 0, total)
    for done, item in enumerate(tqdm(iterable, total=total, desc=desc, disable=disable, leave=False), start=1):
        yield item
        if listener is not None:
            listener(desc, done, total)
