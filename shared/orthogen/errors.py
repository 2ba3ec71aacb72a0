"""Errors that OrthoGen raises on bad input.

Every error names what was wrong and where (a file, a field, an argument), and what was expected,
so that a user never has to read a traceback from deep inside torch or pydicom.
"""
from __future__ import annotations

from pathlib import Path


class OrthoGenError(Exception):
    """Base class of every error OrthoGen raises on purpose."""


class InputError(OrthoGenError, ValueError):
    """An input file or argument cannot be used.

    Args:
        problem: what is wrong, in words ("expected 3 dimensions, got 2").
        source: the file, field or argument the problem is in; printed first.
    """

    def __init__(self, problem: str, source: str | Path | None = None):
        self.problem = problem
        self.source = None if source is None else str(source)
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


def first_orthogen_error(error: BaseException) -> OrthoGenError | None:
    """The OrthoGenError that ``error`` is, or that caused it (``__cause__`` / ``__context__`` chain)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OrthoGenError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def report_input_errors_in_one_line() -> None:
    """Make an OrthoGenError that ends the process print as one line, however deep it was raised.

    MONAI's config machinery re-raises an error from any config expression as ``RuntimeError("Failed to
    evaluate ...")``, and MONAI's transforms as ``RuntimeError("applying transform ...")``, so a user's
    real problem ("file not found") would sit in the middle of a long traceback. This installs a
    ``sys.excepthook`` that finds the OrthoGenError in the uncaught exception's cause chain and prints
    ``error: <message>`` to stderr (the process still exits with status 1); every other exception keeps
    Python's full traceback. The bundles call it from their ``initialize`` step. Hand-written because
    neither MONAI nor ignite has a hook for it.
    """
    import sys

    previous = sys.excepthook
    if getattr(previous, "reports_orthogen_errors", False):
        return

    def hook(kind, value, traceback):
        error = first_orthogen_error(value)
        if error is None:
            previous(kind, value, traceback)
        else:
            print(f"error: {error}", file=sys.stderr, flush=True)

    hook.reports_orthogen_errors = True
    sys.excepthook = hook
