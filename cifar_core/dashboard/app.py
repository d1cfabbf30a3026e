"""CIFAR-10 CNN Lab's dashboard: `cifar-lab serve` (or `streamlit run app.py` from a checkout)."""

import streamlit as st

from cifar_core.dashboard import navigation, sidebar

st.set_page_config(page_title="CIFAR-10 CNN Lab", page_icon=":material/science:", layout="wide")
page = st.navigation(navigation.pages())
sidebar.render()
page.run()
