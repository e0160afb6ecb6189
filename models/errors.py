"""Errors that cross the package boundary.

They live here, in the lowest package, so that `models` can raise them without knowing about
`daw_plugin`, and the CLI (and later the panel) can tell a user's mistake from a bug.
"""

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from string import Formatter

_FORMATTER = Formatter()


class UserError(Exception):
    """A problem the user can fix. ``str(error)`` is one sentence naming the problem and the fix.

    ``field`` names what the user set wrong (a `GenerationRequest` field such as ``"seconds"``, or ``"preset"``,
    ``"region"``, ``"track"``), so a front end can point at it; None when no one field is to blame.
    """

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.field = field

    def worded(self, labels: Mapping[str, str] | None = None) -> str:
        """The message with each field named by its front end's label (see `Problem`); plain text stays as it is."""
        return str(self)


@contextmanager
def naming(field: str) -> Iterator[None]:
    """A `UserError` raised inside that names no field is given ``field``: what it concerns, for a front end to
    point at (a model that is missing or will not load: "model"); one that names its own field keeps it."""
    try:
        yield
    except UserError as error:
        if getattr(error, "field", None) is None:
            error.field = field
        raise


class Problem:
    """One thing wrong with a request: the ``field`` it concerns, and a sentence that names fields by placeholder.

    ``template`` writes a field as ``{seconds}`` (``{field}`` is the problem's own) and a value as ``{value:g}``;
    values are given as keywords and never read as templates, so a value holding braces is shown as it is.
    `worded` puts each front end's label in place of a field: the CLI its flag (``--seconds``), the panel its
    label ("Length"), and without a label the field's own name (``seconds``).
    """

    __slots__ = ("field", "template", "values")

    def __init__(self, field: str, template: str, **values):
        self.field, self.template, self.values = field, template, values

    def worded(self, labels: Mapping[str, str] | None = None) -> str:
        labels = labels or {}
        return self.template.format_map(_Words(self.values, labels, labels.get(self.field, self.field)))

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field the sentence names, ``field`` first (e.g. "--track" with "--takes above 1")."""
        named = [name for _, name, _, _ in _FORMATTER.parse(self.template) if name and name not in self.values]
        return tuple(dict.fromkeys([self.field, *(self.field if name == "field" else name for name in named)]))

    def to_json(self) -> dict:
        """For a front end in another process: `from_json` makes it again, to word with its own labels. Values
        that JSON has no type for are given as their repr; ``message`` is the sentence with the fields' own names."""
        return {"field": self.field, "fields": list(self.fields), "template": self.template,
                "values": {name: _json_value(value) for name, value in self.values.items()}, "message": self.worded()}

    @classmethod
    def from_json(cls, data: Mapping) -> "Problem":
        return cls(data["field"], data["template"], **data["values"])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return (self.field, self.template, self.values) == (other.field, other.template, other.values)

    def __hash__(self) -> int:
        return hash((self.field, self.template))

    def __str__(self) -> str:
        return self.worded()

    def __repr__(self) -> str:
        return f"Problem({self.field!r}, {self.worded()!r})"


def _json_value(value):
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return repr(value)


class InvalidRequest(UserError):
    """Every problem found in one request, reported together; ``field`` is the first problem's."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("an InvalidRequest needs at least one problem")
        super().__init__(self.worded(), field=self.problems[0].field)

    def worded(self, labels: Mapping[str, str] | None = None) -> str:
        """One line: the problem's sentence, or "3 problems: " and each sentence in turn."""
        sentences = [problem.worded(labels) for problem in self.problems]
        return sentences[0] if len(sentences) == 1 else f"{len(sentences)} problems: {' '.join(sentences)}"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(problem.field for problem in self.problems)

    def __reduce__(self):  # made again from its problems (a worker process may send it), not from its text
        return type(self), (self.problems,)


class _Words(dict):
    """A problem's values, and for any other name in its template the field's label (its name without one)."""

    def __init__(self, values: dict, labels: Mapping[str, str], own: str):
        super().__init__(values, field=own)
        self.labels = labels

    def __missing__(self, name: str) -> str:
        return self.labels.get(name, name)


def brief(error: BaseException | str, limit: int = 160) -> str:
    """The first line of a library's error (or a host's error text), short enough to sit inside our own one-line
    message."""
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
