"""Errors that cross the package boundary.

They live here, in the lowest package, so that `models` can raise them without knowing about
`daw_plugin`, and the CLI (and later the panel) can tell a user's mistake from a bug.
"""


class UserError(Exception):
    """A problem the user can fix. ``str(error)`` is one sentence naming the problem and the fix."""


class Cancelled(Exception):
    """Generation was stopped on request; nothing was written."""
