"""Errors that are the user's to fix (a bad option, a missing or unreadable file), as opposed to bugs.

Entry points report these as one line and exit 1 (:func:`inpainting.cli.errors.exit_on_user_error`); anything
else keeps its traceback, because it is ours to fix. Each class also derives from the built-in error it refines
(``ValueError``, ``FileNotFoundError``), so callers that catch the built-in keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every mistake in configuration or input that the message alone lets the user correct."""


class ConfigError(UserError, ValueError):
    """An option has a value the code cannot use; the message names the option and what it accepts."""


class InputError(UserError, ValueError):
    """An input file whose content cannot be used (unreadable, a mask of another size); the message names it."""


class MissingExtraError(UserError, ImportError):
    """An optional package an option needs is not installed; the message says what to install."""
