"""Intervals and McNemar's test against independent computations, and the CLI's compare."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import APP, cli
from scipy.stats import beta

from cifar_core import data as data_mod
from cifar_core.analysis import caveats, compare, stats
from cifar_core.store import rundir, runs


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
    verdict = clear.verdict("A", "B")
    assert verdict.startswith("A's model is more accurate on these test images") and "p = " in verdict
    even = stats.mcnemar(np.r_[np.ones(11), np.zeros(9)].astype(bool), np.r_[np.zeros(11), np.ones(9)].astype(bool))
    assert even.verdict("A", "B").startswith("No difference shown")


def test_images_are_paired_by_their_test_index():
    a = {"index": np.array([3, 1, 2, 0]), "y_true": np.array([3, 1, 2, 0]), "y_pred": np.array([3, 0, 2, 0]),
         "probs": np.eye(6)[[3, 0, 2, 0]]}
    b = {"index": np.array([0, 1, 2, 5]), "y_true": np.array([0, 1, 2, 5]), "y_pred": np.array([1, 1, 2, 5]),
         "probs": np.eye(6)[[1, 1, 2, 5]]}
    ca, cb = stats.paired_correct(a, b)  # shared images 0, 1, 2
    assert ca.tolist() == [True, False, True] and cb.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="share no test image"):
        stats.paired_correct(a, {**b, "index": np.array([7, 8, 9, 10])})


def test_runs_on_different_data_are_not_paired(finished_run):
    info = runs.load_run(finished_run)
    other = runs.RunInfo(info.run_id, info.path, {**info.meta, "data": {"fingerprint": "something else"}}, info.status)
    preds = rundir.read_predictions(finished_run)
    with pytest.raises(ValueError, match="different data sets"):
        compare.paired_predictions(info, other, preds, preds)
    same = compare.significance(compare.paired_predictions(info, info, preds, preds))
    assert (same.only_a, same.only_b, same.p_value) == (0, 0, 1.0)


def test_the_same_test_images_pair_even_when_copied_anew():
    """A fresh copy of the data has new file times, so a new fingerprint; its test-set digest stays the same."""
    copied = {"data": {"fingerprint": "aaaa", "test_digest": "d1"}}
    assert stats.same_test_set(copied, {"data": {"fingerprint": "bbbb", "test_digest": "d1"}}) is None
    assert "different data sets" in stats.same_test_set(copied, {"data": {"fingerprint": "aaaa", "test_digest": "d2"}})
    assert "different data sets" in stats.same_test_set(copied, {"data": {"fingerprint": "bbbb"}}), "no digest: files"
    before_digests = {"data": {"fingerprint": "aaaa", "source": "/data/cifar10-jpeg", "test_images": 10_000}}
    recopied = {"data": {**before_digests["data"], "fingerprint": "bbbb", "test_digest": "d1"}}
    assert stats.same_test_set(before_digests, recopied) is None, "a run without a digest: same source and size"
    moved = {"data": {**recopied["data"], "source": "/elsewhere"}}
    assert "different data sets" in stats.same_test_set(before_digests, moved)
    a = {"index": np.arange(3), "y_true": np.array([0, 1, 2]), "y_pred": np.zeros(3, int), "probs": np.eye(3)}
    with pytest.raises(ValueError, match="different labels at the same positions"):
        stats.paired(a, {**a, "y_true": np.array([0, 2, 1])})
    from cifar_core import data

    ds = data.load_dataset("synthetic")
    assert ds.describe()["test_digest"] == ds.test_digest() and len(ds.test_digest()) == 16


def test_cli_compare_prints_intervals_and_the_verdict(app_runs):
    ids = sorted(p.name for p in app_runs.iterdir() if p.name.startswith("tiny-"))
    out = cli("compare", *ids, runs_dir=app_runs)
    assert out.stdout.count("95% interval") == 2 and "McNemar's exact test, p = " in out.stdout
    assert f"caveat: {caveats.SYNTHETIC}" in out.stdout and f"caveat: {caveats.MODELS_NOT_SETTINGS}" in out.stdout
    bad = cli("compare", ids[0], "broken-run", runs_dir=app_runs, check=False)
    assert bad.returncode == 2 and "no test results" in bad.stderr


def test_group_summary_agrees_with_numpy_and_scipy():
    import pandas as pd
    from scipy import stats as sps

    acc = {"a": [0.70, 0.72, 0.71], "b": [0.75, 0.74, 0.78]}
    results = pd.DataFrame([{"arch": k, "seed": i, "test_accuracy": v, "best_epoch": 5 + i, "cat_dog": 200 + i,
                             "dog_cat": 100, "ece": 0.05 + 0.01 * i}
                            for k, vs in acc.items() for i, v in enumerate(vs)])
    groups = stats.group_summary(results, ["arch"]).set_index("arch")
    for k, vs in acc.items():
        x = np.array(vs)
        assert groups.loc[k, "seeds"] == 3
        assert groups.loc[k, "test acc mean"] == pytest.approx(x.mean())
        assert groups.loc[k, "test acc std"] == pytest.approx(x.std(ddof=1))
        low, high = sps.t.interval(0.95, 2, loc=x.mean(), scale=x.std(ddof=1) / np.sqrt(3))
        assert groups.loc[k, "test acc 95% CI"] == f"{low:.4f}–{high:.4f}"
    assert groups.loc["a", "best epoch mean ± std"] == "6.0 ± 1.0"
    assert groups.loc["a", "ECE mean ± std"] == "0.060 ± 0.010"
    diff = stats.mean_difference(acc["a"], acc["b"])
    assert diff.diff == pytest.approx(np.mean(acc["b"]) - np.mean(acc["a"]))
    assert diff.p_value == pytest.approx(sps.ttest_ind(acc["b"], acc["a"], equal_var=False).pvalue)
    assert diff.low < diff.diff < diff.high
    with pytest.raises(ValueError, match="at least two seeds"):
        stats.mean_difference([0.7], acc["b"])


@pytest.mark.parametrize(("text", "seeds"), [(None, None), ("1", None), ("3", [5, 6, 7]), ("0,4,9", [0, 4, 9])])
def test_seed_lists(text, seeds):
    from cifar_core.studies import plans

    assert plans.parse_seeds(text, base=5) == seeds


@pytest.mark.parametrize("text", ["x", "0,0", "-1,2", "21"])
def test_bad_seed_lists_are_refused(text):
    from cifar_core.studies import plans

    with pytest.raises(runs.RunError, match="--seeds"):
        plans.parse_seeds(text)


def test_train_with_seeds_queues_a_group_and_prints_its_spread(tmp_path):
    from cifar_core.studies import records

    out = cli("train", "--arch", "baseline", "--data", "synthetic", "--subset", "200", "--test-subset", "100",
              "--epochs", "2", "--seeds", "2", runs_dir=tmp_path / "runs", timeout=300)
    study_dir = Path(out.stdout.splitlines()[0])
    study = records.read(study_dir)
    assert study["kind"] == "seeds" and study["seeds"] == [0, 1] and "| baseline | 2 |" in out.stdout
    assert "No earlier run of baseline" in out.stderr, "an empty runs folder: the CLI says it cannot estimate yet"
    results = records.results(study_dir)
    assert sorted(results["seed"]) == [0, 1] and set(results["arch"]) == {"baseline"}
    assert {r.meta["config"]["seed"] for r in runs.list_runs(tmp_path / "runs")} == {0, 1}


def test_reproduce_table_with_seeds_says_whether_the_published_figure_is_within_our_spread(tmp_path, finished_run,
                                                                                           monkeypatch):
    import shutil

    from cifar_core.model import specs
    from cifar_core.model.config import TrainConfig
    from cifar_core.studies import records, report

    runs_dir = tmp_path / "runs"
    study_dir = records.create(tmp_path / "studies", runs_dir, "seed", TrainConfig(), data_mod.summary("synthetic"),
                               seeds=[0, 1])
    study = records.read(study_dir)
    accuracies = {("baseline", 0): 0.70, ("baseline", 1): 0.74, ("batchnorm", 0): 0.76, ("batchnorm", 1): 0.77}
    for entry in study["runs"]:
        key = (entry["labels"]["arch"], entry["labels"]["seed"])
        if key not in accuracies:
            continue
        run_id = f"{key[0]}{key[1]}"
        shutil.copytree(finished_run, runs_dir / run_id)
        rundir.update_json(runs_dir / run_id, rundir.RUN_JSON, id=run_id, test_accuracy=accuracies[key])
        entry["run_id"] = run_id
    rundir.write_json_atomic(study_dir / records.STUDY_JSON, study)
    table = report.seed_comparison(study_dir).set_index("model")
    acc = np.array([0.70, 0.74])
    assert table.loc["baseline", "seeds"] == 2 and table.loc["deeper", "seeds"] == 0
    assert table.loc["baseline", "test acc (ours)"] == pytest.approx(acc.mean())
    assert table.loc["baseline", "test acc std"] == pytest.approx(acc.std(ddof=1))
    assert table.loc["baseline", "published within ±2 std"] == "yes"  # 0.7243 within 0.72 ± 0.057
    assert table.loc["deeper", "published within ±2 std"] == "-"
    assert table.loc["baseline", "published − ours (std)"] == pytest.approx((0.7243 - acc.mean()) / acc.std(ddof=1))
    assert [e["name"] for e in study["runs"]][:2] == ["seed-baseline-seed0", "seed-baseline-seed1"]
    assert specs.from_dict(study["runs"][0]["spec"]) == specs.PRESETS["baseline"]

    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CIFAR_LAB_RUNS", str(runs_dir))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    at = AppTest.from_file(str(APP), default_timeout=60).run().switch_page("views/experiments.py").run()
    assert not at.exception, [e.message for e in at.exception]
    page = " ".join(str(e.value) for e in (*at.subheader, *at.markdown))
    assert "Groups: mean over 2 seeds" in page and "Welch's t-test p = " in page
    assert "arch=batchnorm minus arch=baseline: +0.0450" in page


def test_study_estimate_counts_every_run_with_its_fixed_costs():
    """The seed study with 3 seeds: 9 runs of 3 architectures; with only baseline measured here, the other two were
    left out ('6 of 9 not counted'), and no run's start, data load, tracing or evaluation was counted."""
    from cifar_core.model import specs
    from cifar_core.model.config import TrainConfig
    from cifar_core.studies import estimates, plans

    planned = plans.with_seeds(plans.plan("seed", TrainConfig(subset=1000)), [0, 1, 2])
    data = {"train_images": 2000, "test_images": 500}
    costs = estimates.Costs({"baseline": 100.0}, run_s=10.0, between_s=1.0, runs_measured=4)
    found = estimates.estimate(planned, data, costs)
    # each run: 1,000 training images, the 500 test images to validate (seed protocol: a third of the cost), 30
    # epochs; then the test pass
    work = 30 * (1000 + 500 / 3) + 500 / 3
    inferred = {name: 100.0 * estimates.work(specs.PRESETS["baseline"]) / estimates.work(specs.PRESETS[name])
                for name in ("deeper", "batchnorm")}
    per_seed = 3 * (10.0 + 1.0) + work / 100.0 + work / inferred["deeper"] + work / inferred["batchnorm"]
    assert found.runs == 9 and found.inferred == ["batchnorm", "deeper"]
    assert found.seconds == pytest.approx(3 * per_seed)
    assert "for the 9 runs" in estimates.estimate_text(found, costs)
    assert estimates.estimate(planned, data, estimates.Costs({})) is None, "nothing measured: a probe is needed"


def test_fixed_costs_come_from_earlier_runs(tmp_path):
    """A run's fixed seconds: launch to finish, less its epochs and test pass at its steady speed; between runs of a
    study: one's finish to the next one's launch."""
    import zipfile

    from cifar_core.analysis import scores
    from cifar_core.model import specs
    from cifar_core.model.config import TrainConfig
    from cifar_core.studies import estimates

    sizes = {"train": 900, "validation": 100, "test": 300}
    for index, (launched, finished) in enumerate([(1000.0, 1060.0), (1060.5, 1110.5)]):
        run_dir = runs.create_run(tmp_path, specs.PRESETS["baseline"], TrainConfig(epochs=3), {"source": "synthetic"},
                                  extra={"study": "s", "study_index": index})
        y = np.arange(10)
        scores.save_predictions(run_dir / rundir.PREDICTIONS, y, np.eye(10, dtype=np.float32))
        rundir.write_json_atomic(run_dir / rundir.REPORT, scores.build_report(y, y, [str(c) for c in y]))
        zipfile.ZipFile(run_dir / rundir.MODEL, "w").close()
        runs.update_run(run_dir, status="completed", launched=launched, finished=finished, sizes=sizes)
        for epoch, speed in enumerate([50.0, 100.0, 100.0], start=1):  # the first epoch traces the graph
            rundir.append_metrics_line(run_dir, {"epoch": epoch, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0,
                                                 "val_accuracy": 0.5, "lr": 1e-3, "seconds": 10.0,
                                                 "images_per_s": speed})
    costs = estimates.measure(tmp_path)
    # training and testing at 100 images/s: 3 epochs of 900 + 100/3, plus 300/3 test images: 29 s
    assert costs.speeds == {"baseline": 100.0} and costs.runs_measured == 2
    assert costs.run_s == pytest.approx(((60 - 29) + (50 - 29)) / 2) and costs.between_s == pytest.approx(0.5)
