"""CIFAR-10 CNN Lab: `streamlit run app.py`."""

import streamlit as st

from ui import sidebar

st.set_page_config(page_title="CIFAR-10 CNN Lab", page_icon=":material/science:", layout="wide")

PAGES = [
    st.Page("views/architectures.py", title="Architectures", icon=":material/view_module:", default=True),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/runs.py", title="Runs", icon=":material/list_alt:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("views/misclassified.py", title="Misclassified", icon=":material/image_search:"),
    st.Page("views/experiments.py", title="Experiments", icon=":material/science:"),
]

page = st.navigation(PAGES)
sidebar.render()
page.run()
