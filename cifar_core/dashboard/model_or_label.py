"""Model or label: the map of a run's test images, their nearest training images, and likely label errors.

Widgets only; the work is in cifar_core (analysis.mistakes_map, neighbours, labelissues) behind dashboard.cache.
Embeddings an older run lacks are made by a job beside the dashboard, never in the page's thread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from cifar_core.analysis import caveats, charts, labelissues, mistakes_map, neighbours, projection, scores, stats
from cifar_core.dashboard import cache
from cifar_core.store import embeddings, rundir, runs

MAX_SHOWN, COLUMNS, ZOOM = 36, 6, 3
NEIGHBOURS = 8


def job_ui(info: runs.RunInfo, what: str) -> None:
    """Say what the run lacks (`what`), and make it in a job beside the dashboard (a shared one only says how)."""
    if embeddings.job_running(info.path):
        st.info(f"Making {what} for {info.run_id} in the background (about a minute on 2 cores); this part of the "
                "page fills in when it is done.")
        _wait_for_job(info.path)
        return
    failure = embeddings.job_failure(info.path)
    if failure:
        st.error(f"The job making {what} failed: {failure}")
    if cache.read_only():
        st.info(f"This run has no {what} yet. On the server: `cifar-lab embed {info.run_id} --train --map`.")
        return
    if st.button(f"Make {what}", key=f"embed_{info.run_id}_{what}",
                 help="Embeds the test, validation and training images, then maps the test images to 2-D with "
                      "t-SNE: about a minute on 2 cores for the full data set, in a process of its own."):
        embeddings.start_job(info.path)
        st.rerun()


@st.fragment(run_every=2)
def _wait_for_job(run_dir) -> None:
    if not embeddings.job_running(run_dir):
        st.rerun()


def label_issues_ui(info: runs.RunInfo, finished: list[runs.RunInfo]) -> pd.DataFrame | None:
    """Which images the chosen runs flag as likely mislabeled (test split, one row per image), or None when off."""
    same_data = [r for r in finished if r.run_id != info.run_id and not stats.same_test_set(r.meta, info.meta)]
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    on = c1.toggle("Mark likely mislabeled", value=True, key="mis_label_issues",
                   help=caveats.LABEL_ISSUES_TRUST)
    if not on:
        return None
    more = c2.multiselect("Judge with these runs too (their probabilities averaged)", [r.run_id for r in same_data],
                          key=f"mis_judges_{info.run_id}", help="A seed group, or other runs on the same data, judge "
                          "labels better together than one run alone.")
    by_id = {r.run_id: r for r in same_data}
    try:
        found, _ = cache.label_issues([info.path] + [by_id[i].path for i in more])
    except (labelissues.LabelIssuesError, rundir.DamagedRun) as exc:
        st.warning(f"No label check: {exc}")
        return None
    return found[found["split"] == "test"]


def label_summary_line(found: pd.DataFrame, judges: int) -> str:
    s = labelissues.summarize(found, judges)
    who, whose = ("this run", "its") if judges == 1 else (f"the mean of {judges} runs", "that mean's")
    return (f"**{s.flagged:,}** of {s.images:,} test images flagged as likely mislabeled by {who}; {whose} test "
            f"accuracy {s.accuracy:.4f}, {s.accuracy_set_aside:.4f} with them set aside (an upper bound).")


def label_summary_ui(found: pd.DataFrame, judges: int, more: str = "") -> None:
    """How many images are flagged and the accuracy with them set aside (then `more`), with the caveat a weak
    judge needs."""
    st.caption(label_summary_line(found, judges) + more, help=f"{caveats.LABEL_ISSUES_TRUST} {caveats.SET_ASIDE}")
    s = labelissues.summarize(found, judges)
    weak = caveats.label_issues_weak(s.accuracy, s.flagged / max(s.images, 1))
    if weak:
        st.caption(f":orange[{weak}]")


def flag_notes(found: pd.DataFrame | None, names: list[str]) -> dict[int, str]:
    """test position -> the badge of a flagged image ('⚑ likely mislabeled: looks like a dog')."""
    if found is None:
        return {}
    flagged = found[found["flagged"]]
    return {int(p): f"⚑ likely mislabeled: looks like {names[int(s)]}"
            for p, s in zip(flagged["position"], flagged["suggested"], strict=True)}


def image_grid(ds, points: pd.DataFrame, probs: np.ndarray, names: list[str], flags: dict[int, str]) -> None:
    """The images of `points` (position, row) with the run's top-3 probabilities and any label flag."""
    for start in range(0, len(points), COLUMNS):
        for col, row in zip(st.columns(COLUMNS), points.iloc[start:start + COLUMNS].itertuples(), strict=False):
            if int(row.position) >= len(ds.x_test):
                col.caption(f"test #{int(row.position)} is not in the data set any more")
                continue
            picture = ds.x_test[int(row.position)]
            col.image(Image.fromarray(picture).resize((32 * ZOOM, 32 * ZOOM), Image.NEAREST), width="stretch")
            top = scores.top_k(np.asarray(probs[int(row.row)], dtype=np.float32), names, 3)
            badge = flags.get(int(row.position))
            col.caption(f"test #{int(row.position)} · **{row.true}**  \n" + "  \n".join(f"{n}: {p:.1%}" for n, p in top)
                        + (f"  \n:orange[{badge}]" if badge else ""))


def map_ui(info: runs.RunInfo, names: list[str], preds: dict, ds, pair: tuple[str, str],
           found: pd.DataFrame | None) -> list[int]:
    """The map: every test image a point by what the network sees; drag a region to see its images. Returns the
    positions shown in the gallery (for the neighbours view)."""
    try:
        made = cache.map_points(info.path, names)
    except rundir.DamagedRun as exc:
        st.error(f"The map cannot be drawn: {exc}")
        return []
    if made is None:
        job_ui(info, "embeddings and a map")
        return []
    points, method = made
    flags = flag_notes(found, names)
    points = mistakes_map.mark(points, pair, set(flags))
    if method == "pca":
        st.caption("A quick PCA placement for now: the t-SNE map keeps neighbours together far better.")
        job_ui(info, "the t-SNE map")
    key = f"map_{info.run_id}"
    spec = cache.chart(charts.embedding_map, points, pair,
                       f"{len(points):,} test images by what the network sees ({projection.LABELS[method]})")
    st.vega_lite_chart(spec, on_select="rerun", selection_mode=charts.MAP_BRUSH, key=key, width="content")
    st.caption(f"Colour: true class. Crosses: mistakes. Ringed: {pair[0]} taken for {pair[1]}. Drag a region to see "
               "its images; hover a point for its test number.")
    event = st.session_state.get(key)
    region = (event or {}).get("selection", {}).get(charts.MAP_BRUSH) if event else None
    chosen = mistakes_map.in_region(points, region)
    if chosen.empty:
        st.info("Drag a region on the map to see its images here.")
        return []
    which = st.radio("Show", ["mistakes", "all", "flagged"], horizontal=True, key="map_show",
                     format_func={"mistakes": "mistakes", "all": "every image",
                                  "flagged": "likely mislabeled"}.get)
    shown = {"mistakes": chosen[chosen["wrong"]], "all": chosen, "flagged": chosen[chosen["flagged"]]}[which]
    shown = shown.sort_values(["in_pair", "confidence"], ascending=False)
    st.markdown(f"**{len(chosen):,}** images in the region: {int(chosen['wrong'].sum()):,} mistakes, "
                f"{int(chosen['in_pair'].sum()):,} {pair[0]} taken for {pair[1]}, {int(chosen['flagged'].sum()):,} "
                f"flagged. Showing {min(len(shown), MAX_SHOWN)} of {len(shown):,}.")
    image_grid(ds, shown.head(MAX_SHOWN), preds["probs"], names, flags)
    return [int(p) for p in shown.head(MAX_SHOWN)["position"]]


def neighbours_ui(info: runs.RunInfo, ds, names: list[str], positions: list[int], preds: dict) -> None:
    """For one image of the page: its nearest training images by what the network sees, with their labels."""
    present = [p for p in positions if p < len(ds.x_test)]
    if not present:
        return
    st.subheader("Its nearest training images")
    held = cache.neighbour_index(info.path)
    if held is None:
        job_ui(info, "training-image embeddings")
        return
    index, test = held
    position = st.selectbox("Image", present, format_func=lambda i: f"test #{i}", key=f"nb_image_{info.run_id}")
    rows = np.flatnonzero(test.index == position)
    if not len(rows):
        st.info(f"test #{position} has no embedding in this run.")
        return
    found = index.nearest(test.vectors[rows[0]], NEIGHBOURS)
    row = int(np.flatnonzero(preds["index"] == position)[0])
    true, predicted = names[int(preds["y_true"][row])], names[int(preds["y_pred"][row])]
    st.markdown(f"test #{position}, labelled **{true}**, predicted **{predicted}**: its {len(found)} nearest "
                f"training images are {neighbours.summary(found, names)}.")
    columns = st.columns(len(found) + 1)
    columns[0].image(Image.fromarray(ds.x_test[position]).resize((96, 96), Image.NEAREST),
                     caption=f"test #{position}: {true}")
    for col, r in zip(columns[1:], found.itertuples(), strict=True):
        col.image(Image.fromarray(ds.x_train[r.position]).resize((96, 96), Image.NEAREST),
                  caption=f"{names[r.label]} · {r.distance:.1f}")
    st.caption("Distance: Euclidean, between the inputs of the final layer (what the network sees).")
