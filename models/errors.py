"""Errors that cross the package boundary.

They live here, in the lowest package, so that `models` can raise them without knowing about
`daw_plugin`, and the CLI (and later the panel) can tell a user's mistake from a bug.
"""


class UserError(Exception):
    """A problem the user can fix. ``str(error)`` is one sentence naming the problem and the fix."""


def brief(error: BaseException, limit: int = 160) -> str:
    """The first line of a library's error, short enough to sit inside our own one-line message."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Cancelled(Exception):
    """Generation was stopped on request; nothing was written."""


NOTICES = "daw-plugin.notices"  # the logger a front end listens on: the CLI prints it, the panel will show it


def notify(message: str) -> None:
    """Tell the user something they can act on that is not an error (one sentence, naming what to do).

    A logger rather than a print: it is thread-safe, and each front end decides where notices go.
    """
    import logging

    logging.getLogger(NOTICES).warning(message)
