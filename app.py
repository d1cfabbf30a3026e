"""CIFAR-10 CNN Lab: `streamlit run app.py`."""

import streamlit as st

from ui import sidebar

st.set_page_config(page_title="CIFAR-10 CNN Lab", page_icon="🧪", layout="wide")

PAGES = [
    st.Page("pages/architectures.py", title="Architectures", icon="🧱", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/runs.py", title="Runs", icon="📋"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/misclassified.py", title="Misclassified", icon="🔍"),
    st.Page("pages/experiments.py", title="Experiments", icon="🧪"),
]

page = st.navigation(PAGES)
sidebar.render()
page.run()
