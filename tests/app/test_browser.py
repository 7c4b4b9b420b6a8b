"""The whole Studio in a real browser: Debian Chromium driven by Playwright against `streamlit run app.py`.

Two flows, each in its own server:

1. An at-chance, eegmat-like dataset: the eight eegmat EDF fixtures (EEG + ECG) uploaded with a label
   table that labels the first and last 20 s of every recording — labels nothing in the signals can
   predict. The page reload keeps the dataset; the Models page opens on held-out results and says the old
   model is at chance; the Alignment page says "no alignment above chance" with the same baseline on the
   metric and the heatmap's colour bar.
2. The built-in demo (a good dataset): every stage fit to go on; a bridge trains while its curves grow,
   is stopped, and the stopped run predicts from its best epoch with calibrated confidence; CSV download.

The tests wait on stable things only (text, roles, JavaScript polls): the Train page redraws its run
cards every second, so no element handle is held across a redraw and clicks there go through a retry.
Screenshots go to `test-artifacts/`; with `BIOXBRIDGE_UPDATE_SCREENSHOTS=1` the README shots are also copied
to `docs/screenshots/` (a plain test run never changes tracked files).
"""

from __future__ import annotations

import os
import re
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
EPOCHS = 200  # far more than the test waits for: it stops the run after a few epochs

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
        deadline = time.time() + 90
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
        from bioxbridge_core.jobs import kill_job

        for run in (tmp_path / "runs").glob("*/status.json"):  # training workers run in their own sessions
            kill_job(run.parent)
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
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
        page.set_default_timeout(90_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


# -- helpers that never hold an element across a redraw ------------------------------------------------------
def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit's 'Running…' indicator is gone (the script run finished)."""
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running|Stop/.test(w.innerText); }", timeout=timeout_ms)


def _shot(page, name: str, readme: str | None = None, *, height: int | None = None) -> None:
    """Screenshot of the viewport (``height`` px tall when given: a README shot that shows a whole section)."""
    ARTIFACTS.mkdir(exist_ok=True)
    _wait_idle(page)
    path = ARTIFACTS / f"{name}.png"
    if height:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        page.wait_for_timeout(500)  # let the charts re-layout
    try:
        page.screenshot(path=str(path))
    finally:
        if height:
            page.set_viewport_size(VIEWPORT)
    if readme and os.environ.get("BIOXBRIDGE_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / f"{readme}.png")


def _scroll_to(page, css: str, block: str = "start", nudge: int = -60) -> None:
    """Scroll the first element matching ``css`` into view, by JavaScript (no element handle to go stale)."""
    page.wait_for_function("css => !!document.querySelector(css)", arg=css, timeout=120_000)
    page.evaluate("([css, block]) => document.querySelector(css)?.scrollIntoView({block})", [css, block])
    if nudge:
        page.mouse.wheel(0, nudge)


def _click_button(page, text: str, timeout_s: float = 60.0) -> None:
    """Click the button labelled ``text`` (exact), retrying while a fragment redraws it."""
    deadline = time.time() + timeout_s
    last = None
    while time.time() < deadline:
        try:
            page.get_by_role("button", name=text, exact=True).first.click(timeout=3_000)
            return
        except Exception as exc:  # detached mid-click by a redraw, or not drawn yet: try again
            last = exc
            time.sleep(0.3)
    raise AssertionError(f"could not click {text!r}: {last}")


def _click_until(page, text: str, done_js: str, timeout_s: float = 90.0) -> None:
    """Click the button labelled ``text`` until ``done_js`` (a JavaScript predicate) holds: a click that lands
    while the Train page's fragment redraws its cards can be lost with the replaced button."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        _click_button(page, text, timeout_s=max(1.0, deadline - time.time()))
        try:
            page.wait_for_function(done_js, timeout=6_000)
            return
        except Exception:  # the click was lost in a redraw: click again
            continue
    raise AssertionError(f"clicking {text!r} had no effect within {timeout_s:.0f} s")


RUNNING_JS = ("() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
              " return !!w && /Running/.test(w.innerText); }")


def _click_and_run(page, text: str, done_js: str = "() => false", attempts: int = 4) -> None:
    """Click a button whose click starts a script run; click again if no run started (the click was lost in a
    rerun that was already under way) and the effect ``done_js`` is not there either."""
    for _ in range(attempts):
        _wait_idle(page)
        _click_button(page, text)
        try:
            page.wait_for_function(f"() => ({RUNNING_JS})() || ({done_js})()", timeout=10_000)
            return
        except Exception:
            continue
    raise AssertionError(f"clicking {text!r} never started a run")


def _has_text_js(text: str) -> str:
    return f"() => document.body.innerText.includes({text!r})"


STOP_TAKEN_JS = ("() => ![...document.querySelectorAll('button')]"
                 ".some(b => b.innerText.trim() === 'Stop' && !b.disabled)")


def _go(page, slug: str, title: str) -> None:
    """Switch page with the sidebar navigation (keeps the session), wait for its title."""
    from playwright.sync_api import expect

    page.locator(f'[data-testid="stSidebarNav"] a[href*="/{slug}"]').first.click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=60_000)
    _wait_idle(page)


def _select(page, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name=label, exact=True)
    deadline = time.time() + 90
    while True:  # a rerun that lands between opening the list and picking closes it: open it again
        _wait_idle(page)
        try:
            box.click(timeout=5_000)
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except Exception:
            if time.time() > deadline:
                raise
            page.keyboard.press("Escape")
    expect(box).to_have_value(option)
    _wait_idle(page)


def _no_bug_panels(page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_text("This is a bug")).to_have_count(0)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def _verdict(page, text: str):
    """The alert box holding ``text`` (a verdict's plain sentence)."""
    return page.locator('[data-testid="stAlert"]').filter(has_text=text).first


POINTS_JS = ("() => { const c = document.querySelector('[class*=\"st-key-w_train_curve_\"] "
             "[data-testid=\"stPlotlyChart\"]'); return c ? c.querySelectorAll('.scatterlayer path.point').length : 0; }")


# -- 1. an at-chance dataset: verdicts say so; a reload keeps the dataset ------------------------------------
def test_at_chance_dataset_verdicts_and_reload_in_chromium(browser_page, server, tmp_path):
    from playwright.sync_api import expect

    files = sorted(EEGMAT.glob("*.edf"))
    if len(files) != 8:
        pytest.skip("eegmat fixtures missing")
    halves = tmp_path / "halves.csv"
    halves.write_text("file,label,label_start,label_end\n" + "".join(
        f"{f.name},{lab},{a},{b}\n" for f in files for lab, a, b in (("early", 0, 20), ("late", 20, 40))))
    page = browser_page
    page.goto(server)
    expect(page.get_by_role("heading", name="BioX-Bridge Studio").first).to_be_visible(timeout=90_000)

    _go(page, "data", "Data")
    page.get_by_text("Several recordings, each with both signals").click()
    _wait_idle(page)
    page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]').set_input_files(
        [str(f) for f in files])
    expect(page.get_by_role("heading", name="Signals, subjects and labels")).to_be_visible(timeout=90_000)
    _wait_idle(page)
    expect(page.get_by_text("No PPG channel found").first).to_be_visible()  # default new encoder: no stand-in
    _select(page, "Old encoder (has the task)", "builtin:eeg")
    _select(page, "New encoder (the new signal)", "builtin:ecg")
    _select(page, "Label source", "Label table (CSV)")
    page.locator('[data-testid="stFileUploader"]').nth(1).locator('input[type="file"]').set_input_files(str(halves))
    _wait_idle(page)
    _click_and_run(page, "Use these recordings", _has_text_js("Active dataset:"))
    windows = page.locator('[data-testid="stMetric"]').filter(has_text="Windows")
    expect(windows).to_contain_text("32", timeout=120_000)
    expect(_verdict(page, "Few labelled windows")).to_be_visible()
    _no_bug_panels(page)
    _shot(page, "11_at_chance_data")

    page.reload()  # the URL holds a session token: the dataset, encoders and settings come back
    expect(page.get_by_role("heading", name="Data", exact=True).first).to_be_visible(timeout=90_000)
    _wait_idle(page)
    expect(page.get_by_text("Active dataset: 8 recordings")).to_be_visible(timeout=60_000)
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Windows")).to_contain_text("32", timeout=120_000)
    assert "/" not in page.url.split("s=", 1)[1] and str(tmp_path) not in page.url  # a token, never a path

    _go(page, "models", "Models")
    expect(page.get_by_role("combobox", name="Old encoder (has the task)", exact=True)).to_have_value("builtin:eeg")
    _click_and_run(page, "Train the task head", _has_text_js("at chance on held-out subjects"))
    expect(_verdict(page, "at chance on held-out subjects")).to_be_visible(timeout=180_000)
    expect(page.get_by_role("tab", selected=True)).to_contain_text("held-out subjects")
    _no_bug_panels(page)
    _scroll_to(page, '[data-testid="stHeading"]:has(#old-task-head)', nudge=-20)
    _shot(page, "12_at_chance_models", readme="models", height=1250)

    _go(page, "alignment", "Alignment")
    # the old model is at chance here: either its pseudo labels are one class (nothing to probe) or the
    # chosen cell does not beat its shuffled null; both are a "stop" verdict, which one depends on the weights
    stop = re.compile("Nothing to transfer|No alignment above chance")
    _click_and_run(page, "Compute alignment", "() => /Nothing to transfer|No alignment above chance/"
                                              ".test(document.body.innerText)")
    expect(page.locator('[data-testid="stAlert"]').filter(has_text=stop).first).to_be_visible(timeout=180_000)
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Debiased CKA of this cell")
    baseline = metric.locator('[data-testid="stMetricDelta"]').inner_text().split()[-1]
    heat = '.st-key-w_align_cka [data-testid="stPlotlyChart"]'
    page.wait_for_function("css => !!document.querySelector(css + ' .heatmaplayer')", arg=heat, timeout=120_000)
    ticks = page.evaluate("css => [...document.querySelectorAll(css + ' .colorbar text')].map(t => t.textContent)",
                          heat)
    assert f"shuffled {baseline}" in ticks, (baseline, ticks)  # one baseline, the same on metric and colour bar
    _no_bug_panels(page)
    _scroll_to(page, '[data-testid="stAlert"]')
    _shot(page, "13_at_chance_alignment", readme="alignment", height=1700)


# -- 2. the demo: fit to go on; stop keeps the best epoch; predict with calibrated confidence ---------------
def test_demo_train_stop_predict_in_chromium(browser_page, server, tmp_path):
    from playwright.sync_api import expect

    import pandas as pd

    from bioxbridge_core.data.demo import demo_manifest
    from bioxbridge_core.data.manifest import read_manifest
    from bioxbridge_core.data.readers import read_recording, write_recording

    man = read_manifest(demo_manifest("ecg-ppg", seed=0))
    row = man.table[man.table["split"] == "test"].iloc[0]
    ppg = write_recording(read_recording(row["new_path"], channels=list(row["new_channels"])),
                          tmp_path / f"{row['subject']}_ppg_only.edf")
    page = browser_page
    t0 = time.time()
    page.goto(server)
    expect(page.get_by_role("heading", name="BioX-Bridge Studio").first).to_be_visible(timeout=90_000)
    _shot(page, "01_home")
    _click_and_run(page, "Run the demo", _has_text_js("Paired recordings of the old"))
    expect(page.get_by_role("heading", name="Data", exact=True).first).to_be_visible(timeout=90_000)
    expect(_verdict(page, "labelled training windows per class")).to_be_visible(timeout=120_000)
    _shot(page, "02_demo_data")

    _go(page, "models", "Models")
    _click_and_run(page, "Train the task head", _has_text_js("above chance on held-out subjects"))
    expect(_verdict(page, "above chance on held-out subjects")).to_be_visible(timeout=180_000)
    _shot(page, "03_demo_models")

    _go(page, "alignment", "Alignment")
    _click_and_run(page, "Compute alignment", _has_text_js("align above chance"))
    expect(_verdict(page, "align above chance")).to_be_visible(timeout=180_000)
    _no_bug_panels(page)
    _shot(page, "04_demo_alignment")

    _go(page, "train", "Train")
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    _wait_idle(page)
    patience = page.get_by_role("spinbutton", name="Patience")
    patience.fill("0")  # no early stop: the test stops the run itself, mid-way
    patience.press("Enter")
    _wait_idle(page)
    _click_and_run(page, "Start training", "() => !!document.querySelector('[class*=\"st-key-w_train_run_\"]')")
    page.wait_for_function(f"() => ({POINTS_JS})() >= 24", timeout=300_000)  # about 12 epochs: 2 points each
    first = page.evaluate(POINTS_JS)
    page.wait_for_function(f"n => ({POINTS_JS})() > n", arg=first, timeout=180_000)
    assert page.evaluate(POINTS_JS) > first
    expect(page.get_by_text(re.compile(r"s per epoch · about .+ left")).first).to_be_visible(timeout=60_000)
    _scroll_to(page, '[data-testid="stMetric"]', nudge=-40)
    _shot(page, "05_training_live", readme="training", height=1350)
    _click_until(page, "Stop", STOP_TAKEN_JS)  # disabled once the STOP request is on disk
    expect(page.get_by_text("kept as a usable bridge").first).to_be_visible(timeout=240_000)
    expect(page.get_by_role("button", name="Resume").first).to_be_visible(timeout=60_000)
    _no_bug_panels(page)
    _shot(page, "06_training_stopped")

    _go(page, "predict", "Predict")  # the stopped run is offered and predicts from its best epoch
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Bridge, held-out test")).to_be_visible()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(ppg))
    _wait_idle(page)
    _click_and_run(page, "Predict", _has_text_js("Confidence is calibrated"))
    expect(page.get_by_text("Confidence is calibrated").first).to_be_visible(timeout=120_000)
    conf = page.locator('[data-testid="stMetric"]').filter(has_text="Mean confidence")
    assert float(conf.locator('[data-testid="stMetricValue"]').inner_text()) < 0.999
    _no_bug_panels(page)
    _scroll_to(page, '[data-testid="stMetric"]', nudge=-80)
    _shot(page, "07_predictions", readme="predictions", height=1500)
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="Download predictions (CSV)").click()
    csv_path = tmp_path / "predictions.csv"
    dl.value.save_as(str(csv_path))
    frame = pd.read_csv(csv_path)
    probs = [c for c in frame.columns if c.startswith("p_")]
    assert len(frame) > 0 and sorted(probs) == ["p_exercise", "p_rest", "p_stress"], frame.columns.tolist()
    assert ((frame[probs].sum(axis=1) - 1).abs() < 1e-3).all()
    assert frame[probs].max(axis=1).mean() < 0.999  # calibrated, not the raw 1.00
    print(f"demo browser flow took {time.time() - t0:.0f} s")
