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
