"""What a request asks of a model, checked against what that model can do before its weights load.

The checks read only the model's configs (`models.formats.Format`) and its family's entry in
`models.families`, so a wrong option costs no weights loaded and no generation, and no family is named here.
"""

from __future__ import annotations

from models.errors import InvalidRequest, Problem
from models.families import family, taking


def check_model_options(request, model_format) -> None:
    """``model_format``: `models.formats.Format` of the resolved model. Every option it cannot take is reported
    together, as one `InvalidRequest` whose problems name the options by field."""
    if problems := list(_option_problems(request, model_format)):
        raise InvalidRequest(problems)


def _option_problems(request, model_format):
    name, own = request.model, family(model_format.family)
    if request.melody is not None and not model_format.melody:
        yield Problem("melody", "{name} has no melody conditioning; use a melody model such as musicgen-melody, "
                                "or leave out {melody}.", name=name)
    given = [field for field, value in vars(request.settings).items() if value is not None]
    if foreign := [field for field in given if field not in own.settings]:
        named = " or ".join("{" + field + "}" for field in foreign)
        them = "them" if len(foreign) > 1 else "it"
        yield Problem(foreign[0], f"{{name}} {own.how} and has no {named}; leave {them} out, or use "
                                  f"{taking(foreign)}.", name=name)
    if request.text_encoder is not None and model_format.kind != "audiocraft":
        yield Problem("text_encoder", "{name} carries its own text encoder; {text_encoder} is only for audiocraft "
                                      "checkpoints, so leave it out.", name=name)
