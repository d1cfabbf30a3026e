"""Streamlit-side helpers shared by the pages: cached readers and the sidebar. No training logic here."""
