"""Console tests run real sessions (the real runner, runtime, simulated strap and SQLite store) on a paced
clock, with the console attached through the runner's observers exactly as ``run --console`` does."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clinician_console.accounts import Accounts
from clinician_console.hub import ConsoleHub
from clinician_console.server import ConsoleConfig, create_app
from protocols.model import load_protocol
from therapy import commands as cmd
from therapy.events import Event
from therapy.live import LiveSession
from therapy.runner import SessionOutcome, SessionRequest, SessionRunner
from therapy.store import open_store

PATIENT = "P01"
PASSWORDS = {"admin": "admin-pass-1", "alice": "therapist-pass", "olga": "observer-pass"}


def short_protocol():
    """heights-graded with the shortest allowed baseline, so exposure starts a few seconds in."""
    spec, _ = load_protocol("heights-graded")
    return spec.model_copy(update={"baseline": spec.baseline.model_copy(update={"duration_s": 30.0})})


class Watcher:
    """A lossless subscriber the test waits on (events, not sleeps)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def attach(self, live: LiveSession) -> None:
        live.subscribe(self, lossless=True, name="test-watcher")

    def __call__(self, item: object) -> None:
        if isinstance(item, Event):
            with self._cond:
                self.events.append(item)
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout_s: float = 60.0, after: int = 0) -> Event:
        """The first event from index ``after`` on that satisfies ``predicate``."""
        found: list[Event] = []

        def check() -> bool:
            for e in self.events[after:]:
                if predicate(e):
                    found.append(e)
                    return True
            return False

        with self._cond:
            if not self._cond.wait_for(check, timeout_s):
                raise AssertionError(f"no matching event within {timeout_s} s; last: {self.events[-3:]}")
        return found[0]

    def __len__(self) -> int:
        with self._cond:
            return len(self.events)


class LiveHarness:
    """One real session in a background thread, the console hub attached before its first event."""

    def __init__(self, data_dir: Path, *, speed: float = 20.0, minutes: float = 20.0,
                 observers: tuple = ()) -> None:
        with open_store(data_dir) as store:
            if store.find_patient(PATIENT) is None:
                store.add_patient(PATIENT, birth_year=1990)
        self.hub = ConsoleHub()
        self.watcher = Watcher()
        self.runner = SessionRunner(
            SessionRequest(patient=PATIENT, protocol=short_protocol(), sensor="sim:3", minutes=minutes,
                           speed=speed, display="none", data_dir=data_dir, simulated_patient=True, seed=3,
                           command="test"),
            observers=[self.watcher.attach, self.hub.observer(), *observers],
        )
        self.outcome: SessionOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="test-session", daemon=True)

    def _main(self) -> None:
        try:
            self.outcome = self.runner.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> LiveHarness:
        self.thread.start()
        assert self.runner.started.wait(60), "the session did not start"
        return self

    @property
    def live(self) -> LiveSession:
        assert self.runner.live is not None
        return self.runner.live

    def wait_exposure(self) -> None:
        self.watcher.wait_for(lambda e: e.kind == "PhaseChanged" and e.phase.value == "exposure", 120)

    def finish(self, timeout_s: float = 60.0) -> SessionOutcome:
        if self.thread.is_alive() and self.runner.live is not None:
            self.runner.live.commands.put(cmd.Stop(source="test", reason="test over"))
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the session did not end"
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Callable[..., LiveHarness]]:
    made: list[LiveHarness] = []

    def make(**kw) -> LiveHarness:
        h = LiveHarness(tmp_path, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        if h.thread.is_alive():
            h.finish()


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    acc = Accounts(tmp_path)
    acc.bootstrap(PASSWORDS["admin"])
    acc.add_user("alice", PASSWORDS["alice"], "therapist")
    acc.add_user("olga", PASSWORDS["olga"], "observer")
    yield acc
    acc.close()


def make_client(app, user: str | None):
    """A TestClient logged in as ``user`` (None: anonymous); ``client.csrf`` holds the login's token."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    client.csrf = ""
    if user is not None:
        r = client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
        assert r.status_code == 200, r.text
        client.csrf = r.json()["csrf"]
    return client


@pytest.fixture
def console(tmp_path: Path, accounts: Accounts):
    """``console(hub=None)`` -> (app, store): the console app on this test's data dir."""
    stores = []

    def build(hub: ConsoleHub | None = None, config: ConsoleConfig | None = None, can_start: bool = False):
        store = open_store(tmp_path)
        stores.append(store)
        return create_app(accounts, hub or ConsoleHub(), store=store, config=config, can_start=can_start), store

    yield build
    for s in stores:
        s.close()


class PatientView:
    """A headless render loop on a session's scene box, in its own thread (it owns the GL context there), so
    the console's patient view comes from real rendered frames through ``RenderLoop.request_rgb``."""

    def __init__(self, runner: SessionRunner, eye_size: tuple[int, int] = (320, 360)) -> None:
        self._runner = runner
        self._eye_size = eye_size
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.loop = None
        self.stats = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test-render", daemon=True)

    def _main(self) -> None:
        from environments.displays import open_display
        from environments.render_loop import RenderLoop

        try:
            display = open_display("headless", eye_size=self._eye_size, stereo=True, msaa=0, max_fps=15)
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        try:
            self.loop = RenderLoop(display, self._runner.scene, on_input=lambda ev: None)
            self._ready.set()
            self.stats = self.loop.run(self._stop)
        except BaseException as exc:
            self.error = exc
        finally:
            display.close()
            self._ready.set()

    def start(self) -> PatientView:
        assert self._runner.scene is not None, "start the session first"
        self._thread.start()
        self._ready.wait(60)
        return self

    def request_rgb(self, eye: str = "left"):
        assert self.loop is not None, f"no render loop: {self.error}"
        return self.loop.request_rgb(eye)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def gl_available() -> bool:
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl", require=330)
        ctx.release()
        return True
    except Exception:
        return False


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Playwright for Python driving Debian's chromium (no browser downloads); a failure in CI."""
    import importlib.util
    import os

    from tests.conftest import require

    require(importlib.util.find_spec("playwright") is not None, "playwright is not installed (pip install -e .[dev])")
    require(os.access(CHROMIUM, os.X_OK), "chromium is not installed (apt-get install chromium)")


@pytest.fixture
def serve(accounts: Accounts, tmp_path: Path):
    """``serve(hub)`` -> a started ConsoleServer on 127.0.0.1 (any free port) for this test's data dir."""
    from clinician_console.server import ConsoleServer

    started = []
    stores = []

    def start(hub: ConsoleHub):
        store = open_store(tmp_path)
        stores.append(store)
        config = ConsoleConfig(port=0)
        server = ConsoleServer(create_app(accounts, hub, store=store, config=config), config)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for store in stores:
        store.close()
