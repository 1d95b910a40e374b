"""Errors of the speculative package."""


class SpeculativeTypeError(TypeError, ValueError):
    """An argument of the wrong type: a TypeError that is also a ValueError, so the CLI reports it as one line
    like every other bad input."""
