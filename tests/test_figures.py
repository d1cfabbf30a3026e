"""Figures that read right: counts as integers, p-values that underflow, intervals an accuracy can take,
articles before class names, a budgeted run's epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cifar_core.analysis import figures, scores, stats

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_per_class_support_is_an_integer_count():
    y = np.repeat(np.arange(10), 1000)
    table = scores.per_class_frame(scores.build_report(y, y, NAMES))
    assert table["support"].tolist() == [1000] * 10 and table["support"].dtype.kind == "i"
    assert "1000.000" not in table.to_string(float_format=lambda v: f"{v:.3f}")


def test_a_p_value_that_underflows_reads_as_a_bound_not_zero():
    a = np.r_[np.zeros(2000), np.ones(100)].astype(bool)
    result = stats.mcnemar(a, np.ones_like(a))
    assert result.p_value == 0.0, "2 * 0.5**2000 underflows"
    assert "p < 1e-300" in result.verdict("A", "B") and "p = 0" not in result.verdict("A", "B")
    assert stats.p_value_text(result.p_value) == "< 1e-300"
    assert stats.p_text(0.0312) == "p = 0.031" and stats.p_value_text(1e-12) == "1e-12"


def test_a_mean_accuracy_interval_over_two_seeds_is_clipped_to_one_and_says_so():
    results = pd.DataFrame({"arch": ["a", "a"], "test_accuracy": [0.90, 0.99]})
    mean, low, high = stats.mean_interval(results["test_accuracy"])
    assert high > 1, "the t-interval of two seeds runs past 1"
    text = stats.group_summary(results, ["arch"]).loc[0, "test acc 95% CI"]
    assert text == f"{low:.4f}–1.0000 (clipped to 0–1)"
    assert stats.accuracy_interval_text(0.70, 0.74) == "0.7000–0.7400"


@pytest.mark.parametrize(("noun", "phrase"), [("automobile", "an automobile"), ("airplane", "an airplane"),
                                              ("cat", "a cat"), ("horse", "a horse")])
def test_class_names_take_the_right_article(noun, phrase):
    assert figures.with_article(noun) == phrase


def test_a_budgeted_run_shows_the_epochs_it_planned_and_trained_not_its_ceiling():
    meta = {"config": {"epochs": 1000, "time_budget": 600.0, "recipe": "fast"}, "planned_epochs": 4, "epochs_run": 4}
    assert figures.budgeted_epochs(meta) == "4 trained of 4 planned for a 600 s budget"
    assert figures.shown_config(meta)["epochs"] == "4 trained of 4 planned for a 600 s budget"
    assert figures.shown_config({"config": {"epochs": 30}})["epochs"] == 30
    lines = [{"epoch": 1}, {"epoch": 2}, {"epoch": 3, "partial": True, "images": 8704}]
    cut = {**meta, "planned_epochs": 3, "epochs_run": 3, "epochs_of_images": figures.epochs_of_images(lines, 45_000)}
    assert figures.budgeted_epochs(cut) == ("3 trained of 3 planned for a 600 s budget (2.19 epochs of images: the "
                                            "last cut short)")
