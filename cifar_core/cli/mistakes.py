"""Commands that ask whether a mistake is the model's or the label's: embed, map, neighbours, label-issues."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar_core.analysis import caveats, labelissues, neighbours, projection
from cifar_core.cli import progress
from cifar_core.cli.options import load_data, runs_dir
from cifar_core.store import embeddings, rundir, runs

NEIGHBOURS = 8


def add_commands(sub, common) -> None:
    p = sub.add_parser("embed", parents=[common], help="a run's embeddings (the input of its final layer) for its "
                       "test and validation images; with --train and --map, for neighbours and the map too")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("--train", action="store_true", help="also the training images' (for `neighbours`)")
    p.add_argument("--map", action="store_true", help="also the 2-D map of the test images (for `map`)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("map", parents=[common], help="a run's test images as points of a 2-D map of its "
                       "embeddings, coloured by true class, mistakes marked, one class pair highlighted (PNG)")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--true", default="cat", help="highlight images of this class ... (default: cat)")
    p.add_argument("--pred", default="dog", help="... taken for this one (default: dog)")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("neighbours", parents=[common], help="the training images nearest a test image in a run's "
                       "embedding space, with their labels")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("image", type=int, help="the test image's index in the data set (as the Misclassified page "
                   "and `explain` show it: test #N)")
    p.add_argument("--k", type=int, default=NEIGHBOURS, help=f"how many (default {NEIGHBOURS})")
    p.add_argument("--out", type=Path, help="also a PNG sheet of the image and its neighbours")
    p.set_defaults(func=cmd_neighbours)

    p = sub.add_parser("label-issues", parents=[common], help="likely label errors among the images the runs never "
                       "trained on (confident learning on their averaged probabilities)")
    p.add_argument("runs", nargs="+", help="run ids (or unique prefixes); several are averaged (a seed group)")
    p.add_argument("--out", type=Path, help="a CSV of every flagged image")
    p.add_argument("--show", type=int, default=12, help="flagged images printed, worst first (default 12)")
    p.add_argument("--true", default="cat", help="also count this class's mistakes ... (default: cat)")
    p.add_argument("--pred", default="dog", help="... taken for this one, and how many are flagged (default: dog)")
    p.set_defaults(func=cmd_label_issues)


def _finished(ref: str, args) -> runs.RunInfo:
    info = runs.find_run(runs_dir(args), ref)
    if not info.has_results:
        raise runs.RunError(f"Run {info.run_id} is {info.status}: it has no test results yet.")
    return info


def _ensure(info: runs.RunInfo, train: bool = False, map_: bool = False) -> None:
    """Make what the run lacks, here and now, with progress bars (embeddings of an older run, training
    embeddings, the map)."""
    lacks = (embeddings.read(info.path) is None or (train and embeddings.read_train(info.path) is None)
             or (map_ and embeddings.read_map(info.path) is None))
    if lacks:
        from cifar_core.engine import embeddings as engine_embeddings

        try:
            engine_embeddings.make(info.path, train, map_, counting=progress.counting)
        except engine_embeddings.NoFeatureLayer as exc:
            raise runs.RunError(f"Run {info.run_id}: {exc}.") from None


def cmd_embed(args) -> int:
    info = _finished(args.run, args)
    _ensure(info, args.train, args.map)
    test, val = embeddings.read(info.path)
    print(f"{info.run_id}: {len(test.index):,} test embeddings of {test.vectors.shape[1]} values"
          + (f", {len(val.index):,} validation" if val is not None else "") + f" in {info.path / rundir.EMBEDDINGS}")
    return 0


def cmd_map(args) -> int:
    from cifar_core.analysis import charts, mistakes_map

    info = _finished(args.run, args)
    _ensure(info, map_=True)
    names = rundir.read_report(info.path)["class_names"]
    for label in (args.true, args.pred):
        if label not in names:
            raise runs.RunError(f"No class {label!r}; the classes are {', '.join(names)}.")
    xy, method = embeddings.read_map(info.path)
    frame = mistakes_map.mark(mistakes_map.frame(rundir.read_predictions(info.path), embeddings.read(info.path)[0],
                                                 xy, names), (args.true, args.pred))
    title = (f"{info.name}: its test images by what it sees ({projection.LABELS.get(method, method)}); ringed: "
             f"{args.true} taken for {args.pred}")
    chart = charts.embedding_map(frame, (args.true, args.pred), title, selectable=False)
    import vl_convert

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(vl_convert.vegalite_to_png(chart.to_json(), scale=2))
    wrong = int(frame["wrong"].sum())
    print(f"{len(frame):,} test images, {wrong:,} mistakes ({method} map): {args.out}")
    return 0


def cmd_neighbours(args) -> int:
    info = _finished(args.run, args)
    if args.k < 1:
        raise runs.RunError(f"--k must be at least 1 (got {args.k}).")
    _ensure(info, train=True)
    test, _ = embeddings.read(info.path)
    rows = np.flatnonzero(test.index == args.image)
    if not len(rows):
        raise runs.RunError(f"Run {info.run_id} has no test image #{args.image}: it was evaluated on test images "
                            f"#{int(test.index.min())}..#{int(test.index.max())} ({len(test.index):,} of them).")
    train = embeddings.read_train(info.path)
    names = rundir.read_report(info.path)["class_names"]
    preds = rundir.read_predictions(info.path)
    found = neighbours.Index(train.vectors, train.index, train.labels).nearest(test.vectors[rows[0]], args.k)
    row = int(np.flatnonzero(preds["index"] == args.image)[0])
    true, predicted = names[int(preds["y_true"][row])], names[int(preds["y_pred"][row])]
    print(f"test #{args.image}: labelled {true}, predicted {predicted} ({float(preds['probs'][row].max()):.0%}); "
          f"its {len(found)} nearest training images: {neighbours.summary(found, names)}")
    for r in found.itertuples():
        print(f"  train #{r.position:<6} {names[r.label]:<11} distance {r.distance:.3f}")
    if args.out:
        _neighbour_sheet(info, args, found, names, f"test #{args.image}: {true}", predicted)
    return 0


def _neighbour_sheet(info, args, found, names, caption: str, predicted: str) -> None:
    from cifar_core.engine import explain

    ds = load_data(info.data.get("source"))
    images = [ds.x_test[args.image]] + [ds.x_train[p] for p in found["position"]]
    captions = [caption] + [f"train #{r.position}: {names[r.label]}" for r in found.itertuples()]
    sheet = explain.sheet(images, captions, f"{info.name}: test #{args.image} (predicted {predicted}) and its "
                          f"{len(found)} nearest training images",
                          columns=min(len(images), 5), zoom=4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"sheet: {args.out}")


def cmd_label_issues(args) -> int:
    infos = [_finished(ref, args) for ref in dict.fromkeys(args.runs)]
    test, val, why = labelissues.judge(infos)
    names = rundir.read_report(infos[0].path)["class_names"]
    judged = [labelissues.find(j) for j in (test, val) if j is not None]
    who = infos[0].run_id if len(infos) == 1 else f"the mean of {len(infos)} runs"
    for found in judged:
        s = labelissues.summarize(found, len(infos))
        split = found["split"].iloc[0]
        print(f"{split}: {s.flagged:,} of {s.images:,} images flagged by {who}; accuracy {s.accuracy:.4f}, "
              f"{s.accuracy_set_aside:.4f} with them set aside (an upper bound)")
        if args.true in names and args.pred in names:
            mistakes, flagged = labelissues.pair(found, names.index(args.true), names.index(args.pred))
            print(f"{split}: {args.true} taken for {args.pred} {mistakes:,} times; {flagged:,} of them flagged")
        weak = caveats.label_issues_weak(s.accuracy, s.flagged / s.images)
        if weak:
            print(f"note: {weak}")
    if why:
        print(f"note: {why}")
    flagged = _flagged_table(judged, names)
    print(flagged.head(args.show).to_string(index=False) if len(flagged) else "No image flagged.")
    print(caveats.LABEL_ISSUES_TRUST)
    print(caveats.SET_ASIDE)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        flagged.to_csv(args.out, index=False)
        print(f"{len(flagged):,} flagged images: {args.out}")
    return 0


def _flagged_table(judged: list, names: list[str]):
    import pandas as pd

    if not judged:
        return pd.DataFrame()
    found = pd.concat(judged)
    found = found[found["flagged"]].copy()
    for column in ("given", "suggested"):
        found[column] = found[column].map(lambda i: names[i])
    return found.drop(columns="flagged").round({"quality": 4, "p_given": 4, "p_suggested": 4})
