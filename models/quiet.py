"""Quiet loading and saving of local folders."""

from __future__ import annotations

from contextlib import contextmanager

from transformers import logging as transformers_logging


@contextmanager
def local_work():
    """transformers' per-file bars and notes are noise next to our own progress. Hub downloads stay
    outside this, so their progress bars still show."""
    transformers_logging.set_verbosity_error()
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()
