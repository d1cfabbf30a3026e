"""Experiments: the classic studies (depth, batch norm, dropout, architectures, seed) as one action each."""

import streamlit as st

st.title("Experiments")
st.info("Studies arrive with the studies issue.")
