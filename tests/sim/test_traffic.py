"""The logging policy: distinct slates, exposure-biased, better items higher up."""

from __future__ import annotations

import numpy as np

from loopml.sim.traffic import sample_slates


def test_slates_hold_distinct_items_even_when_weights_are_extreme():
    # 5 items, a slate of 5 and one dominant item: redraws cannot succeed, so the exact
    # Gumbel-top-k fallback must fill every slate with a permutation of all items
    exposure = np.array([0.96, 0.01, 0.01, 0.01, 0.01])
    slates = sample_slates(exposure, 200, 5, np.random.default_rng(0))
    assert (np.sort(slates, axis=1) == np.arange(5)).all()
    assert (slates[:, 0] == 0).mean() > 0.8  # the dominant item mostly takes the top slot


def test_exposure_drives_how_often_and_how_high_items_are_shown():
    exposure = np.linspace(1.0, 10.0, 100)
    exposure /= exposure.sum()
    slates = sample_slates(exposure, 20_000, 5, np.random.default_rng(1))
    counts = np.bincount(slates.ravel(), minlength=100)
    assert counts[90:].sum() > 4 * counts[:10].sum()
    assert exposure[slates[:, 0]].mean() > exposure[slates[:, 4]].mean()
