"""Quiet loading and saving of local folders, and the libraries' warnings a user cannot act on.

What reaches the user is what they can act on: our progress bar, our own lines, a hub download's progress.
Notes about a library's internals (a parameter it renamed, a filter bank of a config we did not choose) are
silenced where our calls raise them, by message, so that anything new still shows.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

# (category, start of the message): each one seen through `daw-plugin generate` with transformers 5 / diffusers.
LIBRARY_WARNINGS = (
    # transformers 5 renamed past_key_values to cache; diffusers' AudioLDM 2 helpers still use the old name.
    (FutureWarning, r"`past_key_values` is deprecated"),
    # CLAP's feature extractor (transformers) and mel front ends (librosa) on configs with more mels than bins.
    (UserWarning, r"At least one mel filter has all zero values"),
    (UserWarning, r"Empty filters detected in mel frequency basis"),
    # diffusers' schedulers call np.array(tensor, copy=False) on torch tensors.
    (DeprecationWarning, r"__array__ implementation doesn't accept a copy"),
)


@contextmanager
def library_warnings():
    """Within the block (or the decorated call), `LIBRARY_WARNINGS` are not shown; all others are.

    ``warnings.catch_warnings`` swaps process-wide filters: only the one inference thread should use this.
    """
    with warnings.catch_warnings():
        for category, message in LIBRARY_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


@contextmanager
def local_work(*, diffusers: bool = False):
    """transformers' (and diffusers') per-file bars and notes are noise next to our own progress; both are
    put back as they were after. Hub downloads stay outside this, so their progress bars still show."""
    from transformers.utils import logging as transformers_logging

    libraries = [transformers_logging]
    if diffusers:
        from diffusers.utils import logging as diffusers_logging

        libraries.append(diffusers_logging)
    before = [(lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libraries]
    for lib in libraries:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        with library_warnings():
            yield
    finally:
        for lib, (level, bars) in zip(libraries, before, strict=True):
            lib.set_verbosity(level)
            if bars:
                lib.enable_progress_bar()
