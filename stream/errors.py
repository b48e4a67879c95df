"""The errors a user can cause and fix. Their message is one line: what went wrong, what to do.

The command line prints such an error as one line and exits nonzero; anything else is a bug and is
reported as one, with the traceback behind ``-v``.
"""

from __future__ import annotations


class AnomstreamError(Exception):
    """Base of every error whose message tells the user what to do."""


class ConfigurationError(AnomstreamError, ValueError):
    """A setting (environment variable or option) has a value anomstream cannot use."""
