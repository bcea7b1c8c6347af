"""The console never blocks the session: a WebSocket that stops reading, a browser killed with SIGKILL and a
console server that crashes all leave the session running to its end and its record complete."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from pathlib import Path

from clinician_console.accounts import Accounts
from tests.console.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORDS,
    LiveHarness,
    require_browser,
)
from therapy.store import open_store


def login_cookie(url: str, user: str = "olga") -> str:
    import httpx

    r = httpx.post(url + "api/login", json={"username": user, "password": PASSWORDS[user]})
    r.raise_for_status()
    return r.cookies["vrex_session"]


def ws_client(url: str, cookie: str, *, rcvbuf: int | None = None):
    """A WebSocket client to the live feed; ``rcvbuf`` shrinks its socket buffer so a non-reader backs up fast."""
    from websockets.sync.client import connect

    host, port = url.split("//")[1].rstrip("/").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    return connect(f"ws://{host}:{port}/api/live/ws", sock=sock, additional_headers={"Cookie": f"vrex_session={cookie}"},
                   max_size=None, open_timeout=30)


def heart_samples_after(harness: LiveHarness, count: int) -> None:
    """Wait (on events) until ``count`` more heart samples were published: the session is still going."""
    start = len(harness.watcher)
    seen = [0]

    def pred(e) -> bool:
        if e.kind == "HeartSampled":
            seen[0] += 1
        return seen[0] >= count

    harness.watcher.wait_for(pred, 120, after=start)


def assert_record_intact(harness: LiveHarness, data_dir: Path) -> None:
    outcome = harness.finish()
    assert outcome.status.value == "stopped" and outcome.lost_events == 0
    published = sum(1 for e in harness.watcher.events if e.kind == "HeartSampled")
    with open_store(data_dir) as store:
        details = store.session_details(outcome.session_id)
    assert details["status"] == "stopped"
    assert details["counts"]["hr_samples"] == published  # every heart sample the session published is stored
    store_sub = next(s for s in outcome.subscribers if s.name == "store")
    assert store_sub.failures == 0


def test_a_websocket_that_stops_reading_blocks_nothing(make_live, serve, tmp_path: Path):
    harness = make_live(speed=40.0).start()
    server = serve(harness.hub)
    cookie = login_cookie(server.url)
    with ws_client(server.url, cookie, rcvbuf=2048) as stalled, ws_client(server.url, cookie) as reader:
        assert '"snapshot"' in stalled.recv(timeout=30)  # ... and never reads again
        assert '"snapshot"' in reader.recv(timeout=30)
        heart_samples_after(harness, 120)  # two session minutes while one browser reads nothing
        got_events = False
        while not got_events:  # the reading browser is still served
            got_events = '"HeartSampled"' in reader.recv(timeout=30)
        import httpx

        assert httpx.get(server.url + "api/live", cookies={"vrex_session": cookie}).json()["attached"]
        assert_record_intact(harness, tmp_path)


def test_a_killed_browser_leaves_the_session_running(make_live, serve, tmp_path: Path):
    require_browser()
    from playwright.sync_api import sync_playwright

    harness = make_live(speed=20.0).start()
    server = serve(harness.hub)
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_ARGS, "--remote-debugging-port=0", "--user-data-dir=" +
                             str(tmp_path / "chromium-profile"), "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = None
        for line in proc.stderr:  # chromium names its DevTools endpoint on stderr
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                endpoint = m.group(1)
                break
        assert endpoint, "chromium did not start its DevTools endpoint"
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining its log
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(endpoint)
            page = browser.contexts[0].new_page()
            page.goto(server.url)
            page.fill("#login-user", "alice")
            page.fill("#login-pass", PASSWORDS["alice"])
            page.click("#login-button")
            page.wait_for_selector("#live", state="visible", timeout=60_000)
            proc.kill()  # SIGKILL: no goodbye from the browser
            proc.wait(30)
        heart_samples_after(harness, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_record_intact(harness, tmp_path)


def test_a_console_server_crash_leaves_the_session_running(make_live, serve, tmp_path: Path):
    harness = make_live(speed=20.0).start()
    server = serve(harness.hub)
    with ws_client(server.url, login_cookie(server.url)) as client:
        assert '"snapshot"' in client.recv(timeout=30)
        server.loop.call_soon_threadsafe(server.loop.stop)  # the server's event loop dies mid-session
        server._thread.join(30)
        assert not server._thread.is_alive() and server.error is not None
        heart_samples_after(harness, 30)
        assert_record_intact(harness, tmp_path)


def test_a_failing_console_observer_does_not_stop_the_session(make_live, tmp_path: Path):
    def broken(live) -> None:
        raise RuntimeError("console could not attach")

    harness = make_live(speed=40.0, observers=(broken,)).start()
    heart_samples_after(harness, 10)
    assert_record_intact(harness, tmp_path)


def test_accounts_file_lives_beside_the_store(tmp_path: Path, accounts: Accounts):
    assert accounts.path == tmp_path / "console.sqlite3"
