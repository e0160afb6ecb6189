"""Quiet loading and saving of local folders."""

from __future__ import annotations

from contextlib import contextmanager


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
        yield
    finally:
        for lib, (level, bars) in zip(libraries, before, strict=True):
            lib.set_verbosity(level)
            if bars:
                lib.enable_progress_bar()
