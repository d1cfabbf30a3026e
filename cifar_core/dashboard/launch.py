"""Starting a study from the Experiments page: the same checks and steps for every kind, a search included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from cifar_core import data
from cifar_core.dashboard import cache, sidebar
from cifar_core.errors import LabError
from cifar_core.studies import records

STUDY_KEY = "study_id"  # the study the Experiments page shows


def launch_study(create: Callable[[dict], Path]) -> None:
    """Check the sidebar's data, create the study from its summary (`create`), launch it and show it; a problem is
    shown in one line and nothing is written."""
    source = sidebar.current_source()
    problem = sidebar.data_problem(source)
    try:
        if problem:
            raise data.DataError(problem)
        study_dir = create(cache.data_summary(source))
    except LabError as exc:
        st.error(str(exc))
        return
    records.launch(study_dir)
    st.session_state[STUDY_KEY] = study_dir.name
    st.rerun()
