"""The sidebar on every page: which data set is in use (or how to get one). RUN_KEY holds the run the user
last opened, so that moving between pages keeps it."""

from __future__ import annotations

import streamlit as st

from cifar_core import data, serving
from cifar_core.analysis import caveats
from cifar_core.dashboard import cache

SOURCE_KEY, RUN_KEY = "data_source", "run_id"


def current_source() -> str:
    """The data source this session uses: its own choice, else CIFAR_LAB_DATA (a shared view has no choice)."""
    if cache.read_only():
        return data.default_source()
    return st.session_state.get(SOURCE_KEY) or data.default_source()


def data_problem(source: str) -> str | None:
    """Why `source` cannot be used right now, or None. The dashboard never starts a download itself."""
    if source == "keras" and not data.KERAS_CACHE.is_dir():
        return (f"No CIFAR-10 data found: CIFAR_LAB_DATA is not set and the Keras cache ({data.KERAS_CACHE}) "
                "is empty. Set CIFAR_LAB_DATA to a CIFAR-10 folder (e.g. ../shared/data/cifar10-jpeg) and "
                "restart, enter a path below, or run `python -c \"import keras; keras.datasets.cifar10.load_data()\"` "
                "where the internet is reachable.")
    try:
        data.detect_kind(source)
    except data.DataError as exc:
        return str(exc)
    return None


def render() -> None:
    with st.sidebar:
        if cache.read_only():
            st.info(serving.NOTICE, icon=":material/visibility:")
        st.markdown("#### Data")
        source = current_source()
        problem = data_problem(source)
        info = None
        if not problem:
            try:
                info = cache.data_summary(source)
            except data.DataError as exc:
                problem = str(exc)
        if info:
            st.caption(f"**{info['kind']}** · `{info['source']}`  \n{info['train_images']:,} train · "
                       f"{info['test_images']:,} test · {len(info['classes'])} classes")
            if info["kind"] == data.SYNTHETIC:
                st.warning(caveats.SYNTHETIC_DATA)
        else:
            st.error(problem)
        if not cache.read_only():
            _source_ui(show_demo_button=info is None)


def _source_ui(show_demo_button: bool) -> None:
    """Choosing a data source reads server paths, so only the person at the machine gets it."""
    if show_demo_button:
        st.button("Use synthetic demo data", key="use_synthetic", on_click=_set_source, args=(data.SYNTHETIC,))
    st.session_state.setdefault("source_input", current_source())
    st.text_input("Data source", key="source_input", on_change=_typed_source,
                  help="An image folder, cifar-10-batches-py, its .tar.gz, 'keras' or 'synthetic'.")


def _set_source(source: str) -> None:
    st.session_state[SOURCE_KEY] = st.session_state["source_input"] = source


def _typed_source() -> None:
    typed = st.session_state["source_input"].strip()
    if typed:
        st.session_state[SOURCE_KEY] = typed
