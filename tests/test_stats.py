"""Intervals and McNemar's test against independent computations, and the CLI's compare."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import cli
from scipy.stats import beta

from cifar_core import compare, rundir, runs, stats


@pytest.mark.parametrize(("correct", "n"), [(7243, 10000), (0, 50), (50, 50), (37, 60)])
def test_accuracy_interval_is_clopper_pearson(correct, n):
    low = beta.ppf(0.025, correct, n - correct + 1) if correct else 0.0
    high = beta.ppf(0.975, correct + 1, n - correct) if correct < n else 1.0
    assert stats.accuracy_interval(correct, n) == pytest.approx((low, high), abs=1e-9)


def exact_mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value by hand: twice the smaller binomial tail, capped at 1."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n) if n else 1.0


@pytest.mark.parametrize(("only_a", "only_b"), [(30, 10), (12, 12), (0, 5), (0, 0), (140, 101)])
def test_mcnemar_matches_the_hand_computed_exact_test(only_a, only_b):
    rng = np.random.default_rng(0)
    a = np.r_[np.ones(only_a), np.zeros(only_b), np.ones(50), np.zeros(20)].astype(bool)
    b = np.r_[np.zeros(only_a), np.ones(only_b), np.ones(50), np.zeros(20)].astype(bool)
    order = rng.permutation(len(a))
    result = stats.mcnemar(a[order], b[order])
    assert (result.only_a, result.only_b, result.both, result.neither) == (only_a, only_b, 50, 20)
    assert result.p_value == pytest.approx(exact_mcnemar_p(only_a, only_b), rel=1e-9)


def test_verdicts_say_which_is_better_only_when_the_test_says_so():
    clear = stats.mcnemar(np.r_[np.ones(40), np.zeros(10)].astype(bool), np.r_[np.zeros(40), np.ones(10)].astype(bool))
    assert clear.verdict("A", "B").startswith("A is really better") and "p = " in clear.verdict("A", "B")
    even = stats.mcnemar(np.r_[np.ones(11), np.zeros(9)].astype(bool), np.r_[np.zeros(11), np.ones(9)].astype(bool))
    assert even.verdict("A", "B").startswith("No real difference shown")


def test_images_are_paired_by_their_test_index():
    a = {"index": np.array([3, 1, 2, 0]), "y_true": np.array([3, 1, 2, 0]), "y_pred": np.array([3, 0, 2, 0])}
    b = {"index": np.array([0, 1, 2, 5]), "y_true": np.array([0, 1, 2, 5]), "y_pred": np.array([1, 1, 2, 5])}
    ca, cb = stats.paired_correct(a, b)  # shared images 0, 1, 2
    assert ca.tolist() == [True, False, True] and cb.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="share no test image"):
        stats.paired_correct(a, {**b, "index": np.array([7, 8, 9, 10])})


def test_runs_on_different_data_are_not_paired(finished_run):
    info = runs.load_run(finished_run)
    other = runs.RunInfo(info.run_id, info.path, {**info.meta, "data": {"fingerprint": "something else"}}, info.status)
    preds = rundir.read_predictions(finished_run)
    with pytest.raises(ValueError, match="different data sets"):
        compare.significance(info, other, preds, preds)
    same = compare.significance(info, info, preds, preds)
    assert (same.only_a, same.only_b, same.p_value) == (0, 0, 1.0)


def test_cli_compare_prints_intervals_and_the_verdict(app_runs):
    ids = sorted(p.name for p in app_runs.iterdir() if p.name.startswith("tiny-"))
    out = cli("compare", *ids, runs_dir=app_runs)
    assert out.stdout.count("95% interval") == 2 and "McNemar's exact test, p = " in out.stdout
    bad = cli("compare", ids[0], "broken-run", runs_dir=app_runs, check=False)
    assert bad.returncode == 2 and "no test results" in bad.stderr
