"""The README's first screen: what a newcomer reads before anything else."""

from __future__ import annotations

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_its_title_then_the_two_commands():
    lines = README.splitlines()
    assert lines[0] == "# CIFAR-10 CNN Lab"
    first_block = README.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_readme_says_what_to_open_how_to_stop_and_which_python():
    head = README.split("## Data")[0]
    assert "http://localhost:8501" in head and "Ctrl-C" in head and "Python 3.11" in head
    assert "## Your first 10 minutes" in head and "synthetic demo data" in head
