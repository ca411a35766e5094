"""A tqdm progress bar fed from compiled code through `jax.debug.callback`."""

from __future__ import annotations

import contextlib

import jax
import numpy as np

_BAR: list = []


def _update(step) -> None:
    if _BAR:
        bar = _BAR[-1]
        value = int(np.max(np.asarray(step)))
        if value > bar.n:
            bar.update(value - bar.n)


def report_progress(step, every: int) -> None:
    """Reports the current step to the active bar every `every` steps (inside compiled code)."""
    jax.lax.cond(step % every == 0, lambda: jax.debug.callback(_update, step), lambda: None)


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool):
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc="training", unit="step")
    _BAR.append(bar)
    try:
        yield
    finally:
        _BAR.pop()
        bar.close()
