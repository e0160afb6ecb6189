"""What a request asks of a model, checked against what that model can do, then handed to it.

The checks read only the model's configs, so a wrong option costs no weights loaded and no generation.
"""

from __future__ import annotations

from daw_plugin.audio import Clip
from models.errors import InvalidRequest, Problem


def check_model_options(request, model_format) -> None:
    """``model_format``: `models.formats.Format` of the resolved model. Every option it cannot take is reported
    together, as one `InvalidRequest` whose problems name the options by field."""
    if problems := list(_option_problems(request, model_format)):
        raise InvalidRequest(problems)


def _option_problems(request, model_format):
    name, diffusion = request.model, model_format.family == "audioldm2"
    if request.melody is not None and not model_format.melody:
        yield Problem("melody", "{name} has no melody conditioning; use a melody model such as musicgen-melody, "
                                "or leave out {melody}.", name=name)
    if request.negative_prompt is not None and not diffusion:
        yield Problem("negative_prompt", "{name} takes no negative prompt; only AudioLDM 2 models (audioldm2, "
                                         "audioldm2-large, audioldm2-music) do, so leave out {negative_prompt}.",
                      name=name)
    if request.steps is not None and not diffusion:
        yield Problem("steps", "{name} generates token by token and has no {steps}; leave it out, or use an "
                               "AudioLDM 2 model.", name=name)
    sampling = [field for field in ("top_k", "top_p", "temperature") if getattr(request, field) is not None]
    if sampling and diffusion:
        given = " or ".join("{" + field + "}" for field in sampling)
        yield Problem(sampling[0], "{name} is an AudioLDM 2 model, which denoises instead of sampling tokens and "
                                   "has no " + given + "; leave " + ("them" if len(sampling) > 1 else "it") +
                                   " out, or use AudioGen or MusicGen.", name=name)
    if request.text_encoder is not None and model_format.kind != "audiocraft":
        yield Problem("text_encoder", "{name} carries its own text encoder; {text_encoder} is only for audiocraft "
                                      "checkpoints, so leave it out.", name=name)


def model_options(request, generator, melody: Clip | None) -> dict:
    """The keyword arguments ``generator.generate`` takes for this request, its own defaults filled in."""
    guidance = generator.default_guidance if request.guidance is None else request.guidance
    if generator.family == "audioldm2":
        return {"guidance": guidance, "steps": request.steps or generator.default_steps,
                "negative_prompt": request.negative_prompt}
    from models.sampling import Sampling

    given = {"top_k": request.top_k, "top_p": request.top_p, "temperature": request.temperature}
    options = {"sampling": Sampling(guidance, **{name: value for name, value in given.items() if value is not None})}
    if melody is not None:
        options["melody"] = melody.conformed(generator.sample_rate, generator.channels).samples
    return options
