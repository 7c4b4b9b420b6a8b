"""The whole Studio in a real browser: Debian Chromium driven by Playwright against `streamlit run app.py`.

Uploads the eight eegmat EDF fixtures (EEG + ECG in each file, label from the `_1`/`_2` ending), picks
EEG (old) -> ECG (new), trains the old head, computes the alignment (heatmap visible), trains a bridge
while watching the loss curve grow, predicts on an ECG-only EDF and downloads the CSV.
Screenshots of every step go to `test-artifacts/`; with `BIOXBRIDGE_UPDATE_SCREENSHOTS=1` the three
README shots are also copied to `docs/screenshots/` (a plain test run never changes tracked files).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
EEGMAT = REPO / "tests" / "fixtures" / "eegmat"
ARTIFACTS = REPO / "test-artifacts"
SHOTS = REPO / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
EPOCHS = 150  # long enough (tens of seconds on 2 CPU cores) to look at the curve twice while it grows

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`streamlit run app.py` on a free port with its run store and caches in tmp_path; yields the URL."""
    port = _free_port()
    env = {**os.environ, "BIOXBRIDGE_CACHE": str(tmp_path / "cache"), "BIOXBRIDGE_RUNS": str(tmp_path / "runs"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium to run the browser tests)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--headless", "--no-sandbox", "--disable-gpu",
                                           "--disable-background-networking"])
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _shot(page, name: str, readme: str | None = None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    _wait_idle(page)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if readme and os.environ.get("BIOXBRIDGE_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / f"{readme}.png")


def _go(page, slug: str, title: str) -> None:
    """Switch page with the sidebar navigation (keeps the session), wait for its title."""
    from playwright.sync_api import expect

    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{slug}"]').click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=30_000)


def _select(page, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)


def _no_bug_panels(page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_text("This is a bug")).to_have_count(0)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def _wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit's 'Running…' indicator is gone (the script run finished)."""
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running|Stop/.test(w.innerText); }", timeout=timeout_ms)


POINTS_JS = ("() => { const c = document.querySelector('.st-key-w_train_curve_box [data-testid=\"stPlotlyChart\"]')"
             " || document.querySelector('[data-testid=\"stPlotlyChart\"]');"
             " return c ? c.querySelectorAll('.scatterlayer path.point').length : 0; }")


def test_studio_end_to_end_in_chromium(browser_page, server, tmp_path):  # browser first: skips before starting
    from playwright.sync_api import expect

    import pandas as pd

    from bioxbridge_core.data.readers import read_recording, write_recording

    files = sorted(EEGMAT.glob("*.edf"))
    if len(files) != 8:
        pytest.skip("eegmat fixtures missing")
    ecg_only = write_recording(read_recording(files[3], channels=["ECG ECG"]), tmp_path / "Subject01_2_ecg.edf")
    page = browser_page
    t0 = time.time()

    # 1. home
    page.goto(server)
    expect(page.get_by_role("heading", name="BioX-Bridge Studio").first).to_be_visible(timeout=60_000)
    _shot(page, "01_home")

    # 2. data: eight paired EDFs, subjects and labels from the file names, EEG -> ECG
    _go(page, "data", "Data")
    page.get_by_text("Several files, each with both signals").click()
    uploader = page.locator('[data-testid="stFileUploader"]').first
    uploader.locator('input[type="file"]').set_input_files([str(f) for f in files])
    expect(page.get_by_role("heading", name="Signals, subjects and labels")).to_be_visible(timeout=60_000)
    _wait_idle(page)
    _select(page, "Old encoder (has the task)", "builtin:eeg")
    _wait_idle(page)
    _select(page, "New encoder (the new signal)", "builtin:ecg")
    _wait_idle(page)
    plan = page.locator('[data-testid="stDataFrame"]').first
    expect(plan).to_be_visible()
    page.get_by_role("button", name="Use these recordings").click()
    windows = page.locator('[data-testid="stMetric"]').filter(has_text="Windows")
    expect(windows).to_be_visible(timeout=120_000)
    expect(windows).to_contain_text("32")  # 8 files x 4 windows of 10 s
    step = page.get_by_role("spinbutton", name="Step (s)")
    step.fill("5")  # half-overlapping windows: 7 per 40-s file, more pairs for the alignment
    step.press("Enter")
    expect(windows).to_contain_text("56", timeout=120_000)
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Classes")).to_contain_text("2")
    _no_bug_panels(page)
    page.locator('.st-key-w_data_preview_plot').scroll_into_view_if_needed()
    _shot(page, "02_data_preview")
    windows.scroll_into_view_if_needed()
    _shot(page, "02_data_windows")

    # 3. models: the choice carried over; train the old task head
    _go(page, "models", "Models")
    expect(page.get_by_role("combobox", name="Old encoder (has the task)", exact=True)).to_have_value("builtin:eeg")
    expect(page.get_by_role("combobox", name="New encoder (the new signal)", exact=True)).to_have_value("builtin:ecg")
    page.get_by_role("button", name="Train the task head").click()
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Balanced accuracy").first).to_be_visible(
        timeout=180_000)
    _no_bug_panels(page)
    _shot(page, "03_models")

    # 4. alignment: the CKA heatmap
    _go(page, "alignment", "Alignment")
    page.get_by_role("button", name="Compute alignment").click()
    heat = page.locator('.st-key-w_align_cka [data-testid="stPlotlyChart"]')
    expect(heat.locator(".heatmaplayer").first).to_be_attached(timeout=180_000)
    heat.scroll_into_view_if_needed()
    expect(heat).to_be_visible()
    _no_bug_panels(page)
    heat.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.wheel(0, -60)
    _shot(page, "04_alignment", readme="alignment")

    # 5. train: a short bridge run; the loss curve gains points while we watch
    _go(page, "train", "Train")
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    _wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(f"() => ({POINTS_JS})() >= 4", timeout=180_000)
    first = page.evaluate(POINTS_JS)
    page.wait_for_function(f"n => ({POINTS_JS})() > n", arg=first, timeout=120_000)
    second = page.evaluate(POINTS_JS)
    assert second > first, (first, second)
    page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
    _shot(page, "05_training_live", readme="training")
    expect(page.get_by_text("completed").first).to_be_visible(timeout=240_000)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0, timeout=30_000)  # no longer active
    _wait_idle(page)
    _no_bug_panels(page)
    _shot(page, "06_training_done")

    # 6. predict on an ECG-only file, download the CSV
    _go(page, "predict", "Predict")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(ecg_only))
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Windows")).to_be_visible(timeout=120_000)
    _no_bug_panels(page)
    page.locator('.st-key-w_predict_timeline').scroll_into_view_if_needed()
    _shot(page, "07_predictions", readme="predictions")
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="Download predictions (CSV)").click()
    csv_path = tmp_path / "predictions.csv"
    dl.value.save_as(str(csv_path))
    frame = pd.read_csv(csv_path)
    probs = [c for c in frame.columns if c.startswith("p_")]
    assert len(frame) > 0 and sorted(probs) == ["p_rest", "p_task"], frame.columns.tolist()
    assert ((frame[probs].sum(axis=1) - 1).abs() < 1e-3).all()
    print(f"browser flow took {time.time() - t0:.0f} s")
