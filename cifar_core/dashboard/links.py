"""Clicks that lead from one page to another: a confusion cell on Runs or Compare opens Misclassified on it."""

from __future__ import annotations

import streamlit as st

from cifar_core.analysis import charts
from cifar_core.dashboard import navigation, sidebar

TRUE_KEY, PREDICTED_KEY, PAGE_KEY = "mis_true", "mis_pred", "mis_page"
_OPEN = "open_misclassified"


def choose_pair(true: str, predicted: str) -> None:
    """Misclassified shows the `true` images taken for `predicted`, from its first page."""
    st.session_state[TRUE_KEY], st.session_state[PREDICTED_KEY] = true, predicted
    st.session_state[PAGE_KEY] = 1


def clicked_cell(chart_key: str) -> dict | None:
    """The confusion cell (true, predicted, and run where several are shown) a click on the chart with key
    `chart_key` selected; None when the click cleared it."""
    event = st.session_state.get(chart_key)
    cells = event["selection"].get(charts.CELL_SELECTION) if event and event.get("selection") else None
    return cells[0] if cells else None


def open_cell(chart_key: str, run_ids: dict[str, str]) -> None:
    """A chart's on_select callback: the clicked cell's run (`run_ids` maps a matrix's title to its run id, or
    '' to the one run shown) and pair are opened on Misclassified once the page's script runs (`follow`)."""
    cell = clicked_cell(chart_key)
    if not cell:
        return
    st.session_state[sidebar.RUN_KEY] = run_ids[cell.get("run", "")]
    choose_pair(cell["true"], cell["predicted"])
    st.session_state[_OPEN] = True


def follow() -> None:
    """Switch to Misclassified where a click asked for it (a callback cannot switch pages itself)."""
    if st.session_state.pop(_OPEN, False):
        navigation.go(navigation.MISCLASSIFIED)
