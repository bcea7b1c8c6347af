"""A real browser (Playwright driving Debian's Chromium) on a real session: log in, watch the HR chart move,
raise the level with its confirmation, accept an offered step-up, press STOP, end the session; each asserted
on the session record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require
from tests.console.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORDS,
    PatientView,
    gl_available,
    require_browser,
)
from therapy.store import open_store

#: docs/console.png is refreshed only on request (VREX_DOCS_SCREENSHOT=1), so a test run leaves the tree clean.
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "console.png"


def log_in(page, url: str, user: str) -> None:
    page.goto(url)
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORDS[user])
    page.click("#login-button")
    page.wait_for_selector("#live", state="visible", timeout=60_000)


def test_therapist_watches_and_steers_a_session_in_chromium(make_live, serve, tmp_path: Path):
    require_browser()
    require(gl_available(), "no EGL for the headless renderer (the patient's view)")
    from playwright.sync_api import sync_playwright

    harness = make_live(speed=8.0).start()
    view = PatientView(harness.runner).start()
    harness.hub.set_view(view.request_rgb)
    server = serve(harness.hub)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # bypass_csp: the page's CSP forbids eval, which the test's wait_for_function strings need
            page = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(page, server.url, "alice")

            # the HR chart fills and moves as heart samples arrive (data and pixels both change)
            def redrawn() -> None:  # the chart has been drawn (twice) since the data changed
                renders = page.evaluate("Number(document.body.dataset.renders || 0)")
                page.wait_for_function(f"Number(document.body.dataset.renders) >= {renders + 2}")

            page.wait_for_function("data.hr[0].length >= 3", timeout=60_000)
            redrawn()
            before_points = page.evaluate("data.hr[0].length")
            before_pixels = page.locator("#c-hr canvas").screenshot()
            page.wait_for_function(f"data.hr[0].length >= {before_points + 3}", timeout=60_000)
            redrawn()
            assert page.locator("#c-hr canvas").screenshot() != before_pixels

            # exposure: next level needs the confirmation step, then the record shows the therapist's change
            page.wait_for_function("state.snap && state.snap.phase === 'exposure'", timeout=120_000)
            level = page.evaluate("state.snap.level")
            n = len(harness.watcher)
            page.click("[data-testid=next-level]")
            page.wait_for_selector("[data-testid=confirm-dialog][open]")
            page.click("[data-testid=confirm-ok]")
            changed = harness.watcher.wait_for(
                lambda e: e.kind == "LevelChanged" and e.cause == "therapist", after=n)
            assert changed.level == level + 1 and "therapist:alice" in changed.reason
            page.wait_for_function(f"state.snap.level === {level + 1}")
            page.wait_for_function("document.getElementById('view').naturalWidth > 0", timeout=30_000)
            page.fill("#note-text", "breathing faster on the terrace")
            page.click("[data-testid=add-note]")
            page.wait_for_function("document.getElementById('control-msg').textContent === 'note saved'")

            # the controller offers a step up: the therapist accepts it (confirmed) and the record says so
            n = len(harness.watcher)
            page.wait_for_selector("[data-testid=stepup]", state="visible", timeout=120_000)
            shot = DOCS_SCREENSHOT if os.environ.get("VREX_DOCS_SCREENSHOT") else tmp_path / "console.png"
            shot.parent.mkdir(exist_ok=True)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            page.click("[data-testid=accept-step-up]")
            page.click("[data-testid=confirm-ok]")
            accepted = harness.watcher.wait_for(lambda e: e.kind == "StepUpResolved", after=n)
            assert accepted.outcome == "accepted" and "therapist:alice" in accepted.who
            page.wait_for_selector("[data-testid=stepup]", state="hidden")

            # STOP: the patient goes to the safe place, the page follows the session
            n = len(harness.watcher)
            page.click("[data-testid=stop]")
            safe = harness.watcher.wait_for(lambda e: e.kind == "PhaseChanged" and e.phase.value == "safe_place",
                                            after=n)
            assert "alice" in safe.reason or "STOP" in safe.reason
            page.wait_for_function("state.snap.phase === 'safe_place'")
            assert harness.runner.scene.get().safe_place

            # end the session from the page (confirmed): the record closes as stopped, by alice
            page.click("[data-testid=end-session]")
            page.click("[data-testid=confirm-ok]")
            harness.watcher.wait_for(lambda e: e.kind == "SessionEnded")
            page.wait_for_function("state.snap.status === 'stopped'")
            assert not errors, errors
            browser.close()
        outcome = harness.finish()
    finally:
        view.stop()
    assert outcome.status.value == "stopped" and "therapist:alice" in outcome.end_reason
    with open_store(tmp_path) as store:
        details = store.session_details(outcome.session_id)
    assert details["status"] == "stopped"
    assert any(lv["cause"] == "therapist" and "therapist:alice" in lv["reason"] for lv in details["levels"])
    assert any(ph["phase"] == "safe_place" for ph in details["phases"])
    assert any(lv["cause"] == "therapist" and lv["level"] == level + 2 for lv in details["levels"])  # the step up
    assert details["counts"]["hr_samples"] > 10
    assert view.error is None and view.stats is not None and view.stats.frames > 0


def test_observer_page_has_no_controls(make_live, serve):
    require_browser()
    from playwright.sync_api import sync_playwright

    harness = make_live(speed=8.0).start()
    server = serve(harness.hub)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(bypass_csp=True).new_page()  # the test's wait_for_function evaluates strings
        log_in(page, server.url, "olga")
        page.wait_for_function("data.hr[0].length >= 1", timeout=60_000)
        assert page.is_disabled("[data-testid=stop]") and page.is_disabled("[data-testid=end-session]")
        assert "observer" in page.inner_text("#who")
        browser.close()
    harness.finish()


@pytest.mark.parametrize("bad", ["wrong-password"])
def test_wrong_password_is_shown(make_live, serve, bad):
    require_browser()
    from playwright.sync_api import sync_playwright

    harness = make_live(speed=8.0).start()
    server = serve(harness.hub)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(bypass_csp=True).new_page()  # the test's wait_for_function evaluates strings
        page.goto(server.url)
        page.fill("#login-user", "alice")
        page.fill("#login-pass", bad)
        page.click("#login-button")
        page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
        assert "wrong user name or password" in page.inner_text("#login-error")
        browser.close()
    harness.finish()


def test_patients_and_past_sessions_in_chromium(make_live, serve, accounts):
    """After a session: the patient's list, their sessions, one session's chart, events and a new note."""
    require_browser()
    from playwright.sync_api import sync_playwright

    harness = make_live(speed=40.0).start()
    harness.wait_exposure()
    outcome = harness.finish()
    server = serve(harness.hub)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(bypass_csp=True).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, server.url, "alice")
        page.click(".tab[data-tab=patients]")
        page.click("#patients tbody tr:has-text('P01')")
        page.wait_for_selector("#sessions tbody tr:has-text('stopped')")
        page.click("#sessions tbody tr:has-text('stopped')")
        page.wait_for_selector("#session-detail", state="visible")
        page.wait_for_selector("#sd-chart canvas")
        assert "stopped" in page.inner_text("#sd-summary")
        assert "level" in page.inner_text("#sd-events")
        page.fill("#sd-note", "good session, habituated at level 1")
        page.click("#sd-note-form button")
        page.wait_for_selector("#sd-notes li:has-text('habituated at level 1')")
        assert not errors, errors
        browser.close()
    notes = accounts.notes(outcome.session_id)
    assert notes and notes[-1]["username"] == "alice" and "habituated" in notes[-1]["text"]
