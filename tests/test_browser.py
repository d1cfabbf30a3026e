"""End to end as a person would: the real app in headless Chromium, architecture -> train -> compare -> misclassified.

Compare gets its second run from a baseline trained beforehand (the session's finished_run fixture).

Skips with the reason where Debian's chromium (or the playwright package) is absent. Screenshots go to
artifacts/screenshots/e2e-*.png.
"""

from __future__ import annotations

import re
import shutil

import pytest
from browser import chromium_missing, launch_browser, serve_app, visible_box, wait_rendered
from conftest import ROOT
from playwright.sync_api import expect

from cifar_core.analysis import scores
from cifar_core.store import rundir

pytestmark = pytest.mark.browser
SHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory) -> dict[str, str]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    return {"CIFAR_LAB_RUNS": str(tmp_path_factory.mktemp("first-request") / "runs"), "CIFAR_LAB_DATA": "synthetic"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, finished_run):
    """The real app on a free localhost port, over a runs folder that already holds one finished baseline run."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    runs_dir = tmp_path_factory.mktemp("browser-runs") / "runs"
    shutil.copytree(finished_run, runs_dir / finished_run.name)
    with serve_app({"CIFAR_LAB_RUNS": str(runs_dir), "CIFAR_LAB_DATA": "synthetic"}) as url:
        yield url


def test_first_request_to_a_page_url_renders_the_whole_app(server_env):
    """A bookmark or a tab left open across a restart: /runs as the very first request gets the app's own
    navigation and data sidebar, not Streamlit's file-name navigation."""
    with serve_app(server_env) as url, launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/runs")
        page.get_by_role("heading", name="Runs", exact=True).wait_for(timeout=60_000)
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_text("Misclassified", exact=True).wait_for()
        page.get_by_test_id("stSidebar").get_by_text("2,000 train", exact=False).wait_for()
        assert not nav.get_by_text("app", exact=True).count() and not nav.get_by_text("runs", exact=True).count()


def start_tiny_run(page, arch: str) -> None:
    form = page.get_by_test_id("stForm")
    form.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name=arch, exact=True).click()
    form.get_by_label("Epochs (max)").fill("2")
    form.get_by_label("Epochs (max)").press("Enter")  # a half-typed form: Enter must not start a run
    wait_rendered(page, "Train", settle_ms=0)
    assert not page.get_by_text("status running", exact=False).count(), "Enter in a field started a run"
    form.get_by_role("button", name="Start training").wait_for()
    form.get_by_label("Training subset (0 = all)").fill("500")
    form.get_by_role("button", name="Start training").click()
    page.get_by_text("status running", exact=False).or_(page.get_by_text("starting:")).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Start training").wait_for(timeout=180_000)
    wait_rendered(page, "Train")
    page.get_by_text(f"{arch}-", exact=False).get_by_text("completed: test accuracy", exact=False).or_(
        page.get_by_text("completed: test accuracy", exact=False)).first.wait_for(timeout=30_000)


def open_a_compare_cell(page) -> None:
    """Click a cell near the middle of Compare's first confusion matrix: Misclassified opens on that run and pair,
    with its images (or, for an empty cell, the sentence that there are none)."""
    matrices = page.get_by_test_id("stVegaLiteChart").nth(1)
    matrices.scroll_into_view_if_needed()
    matrices.locator("canvas, svg").first.wait_for()
    box = matrices.bounding_box()
    page.mouse.click(box["x"] + min(235, box["width"] / 4), box["y"] + min(185, box["height"] / 2))
    wait_rendered(page, "Misclassified images")
    page.get_by_test_id("stImage").or_(page.get_by_text("image was predicted as", exact=False)).first.wait_for(
        timeout=60_000)
    page.screenshot(path=str(SHOTS / "e2e-3b-compare-cell-opened.png"))


def test_architecture_train_compare_misclassified(server, finished_run):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(server)
        wait_rendered(page, "Architectures")
        page.get_by_text("358,346").wait_for()
        page.get_by_text("Synthetic demo data").first.wait_for()
        page.screenshot(path=str(SHOTS / "e2e-1-architectures.png"))

        page.get_by_role("link", name="Train").first.click()
        wait_rendered(page, "Train")
        start_tiny_run(page, "batchnorm")
        page.screenshot(path=str(SHOTS / "e2e-2-trained.png"))

        page.get_by_role("link", name="Compare").first.click()
        wait_rendered(page, "Compare runs")
        page.get_by_text("What changed between two models").wait_for()
        page.get_by_text("block 1 · batch norm").first.wait_for()
        page.screenshot(path=str(SHOTS / "e2e-3-compare.png"))
        open_a_compare_cell(page)

        page.get_by_role("link", name="Misclassified").first.click()
        wait_rendered(page, "Misclassified images")
        # The baseline trained beforehand (fixed seed) has known confusions; a fresh 2-epoch run may have others.
        run_picker = page.get_by_role("combobox", name="Run", exact=True)
        run_picker.click()
        page.get_by_role("option", name=re.compile("^tiny-baseline")).click()
        expect(run_picker).to_have_value(re.compile("^tiny-baseline"))
        worst = scores.top_confusions(rundir.read_report(finished_run), 1).iloc[0]
        top = page.get_by_role("button", name=f"{worst['true']} → {worst['predicted']}: {worst['count']}")
        # The cell click opened the other run first: while the page reruns, its button for the same pair can still be
        # shown beside the new one. Both are one widget (key top_<true>_<pred>), so either click asks for this pair.
        top.first.click()
        page.get_by_text(f"{worst['true']} test images predicted as").wait_for()
        wait_rendered(page, "Misclassified images")
        page.screenshot(path=str(SHOTS / "e2e-4-misclassified.png"))
        page.get_by_test_id("stImage").first.wait_for()
        page.get_by_text("test #").first.wait_for()

        # The map of what the network sees: drag a region, and its images show with their probabilities.
        page.get_by_text("Map of what it sees").click()
        chart = page.locator(":is(canvas, svg.marks) >> visible=true").first  # vega draws on either
        chart.wait_for(timeout=60_000)
        wait_rendered(page, "Misclassified images")  # the page has stopped moving: the drag lands where it aims
        box = visible_box(chart)
        page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.1)  # past the title
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.9, steps=6)
        page.mouse.up()
        page.get_by_text("images in the region").wait_for(timeout=60_000)
        # Which images the region holds depends on this CPU's arithmetic: it may hold no mistake, but every image
        # shows under "every image".
        page.get_by_text("every image", exact=True).click()
        wait_rendered(page, "Misclassified images")
        page.get_by_test_id("stImage").first.wait_for()
        page.screenshot(path=str(SHOTS / "e2e-5-map.png"))
