"""The dashboard's pages, each defined once: app.py lists them, and a page that sends the user to another names it
here (`go(MISCLASSIFIED)`). Streamlit's page objects are made afresh for each script run, since st.navigation marks
the one it runs on the object itself, and sessions run side by side. (Pages live in views/, not pages/: with
st.navigation, a pages/ folder makes Streamlit show its file-name navigation on a first request to a page URL.)"""

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"


@dataclass(frozen=True)
class Page:
    file: str
    title: str
    icon: str
    default: bool = False


ARCHITECTURES = Page("architectures.py", "Architectures", ":material/view_module:", default=True)
TRAIN = Page("train.py", "Train", ":material/model_training:")
RUNS = Page("runs.py", "Runs", ":material/list_alt:")
COMPARE = Page("compare.py", "Compare", ":material/compare_arrows:")
MISCLASSIFIED = Page("misclassified.py", "Misclassified", ":material/image_search:")
EXPERIMENTS = Page("experiments.py", "Experiments", ":material/science:")
ALL = (ARCHITECTURES, TRAIN, RUNS, COMPARE, MISCLASSIFIED, EXPERIMENTS)


def streamlit_page(page: Page):
    return st.Page(VIEWS / page.file, title=page.title, icon=page.icon, default=page.default)


def pages() -> list:
    """Every page, in the order the sidebar lists them."""
    return [streamlit_page(p) for p in ALL]


def go(page: Page) -> None:
    """Switch to `page` (ends this script run)."""
    st.switch_page(streamlit_page(page))
