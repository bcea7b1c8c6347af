"""The console's web server: FastAPI routes (REST + one WebSocket) and a uvicorn thread to serve them.

Every route but the page's static files, ``/api/login`` and the first-start
set-up needs a login cookie; every state-changing route also needs the login's
CSRF token in the ``X-CSRF-Token`` header (the cookie is SameSite=Strict too:
two independent guards). User mistakes are 4xx with a ``detail`` sentence;
the OpenAPI description is at ``/openapi.json`` (and ``/docs``).

The server never runs on the session's threads: uvicorn has its own thread and
event loop, and it sees the session only through :class:`ConsoleHub`.
"""

# No ``from __future__ import annotations``: the control routes are built in a loop and FastAPI must see their
# body types as real classes, not strings.

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import (
    Body,
    Depends,
    FastAPI,
    HTTPException,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from clinician_console.accounts import AccountError, Accounts, Login
from clinician_console.controls import (
    Control,
    ControlError,
    NoteBody,
    available,
    controls,
)
from clinician_console.fanout import Fanout
from clinician_console.hub import ConsoleHub, event_dict, snapshot_dict
from clinician_console.launcher import Launcher, LaunchError, StartRequest
from therapy import commands as cmd
from therapy.errors import TherapyError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "vrex_session"
CSRF_HEADER = "X-CSRF-Token"


class ConsoleError(Exception):
    """A console set-up mistake (address, TLS files); ``main.py`` prints it as one line."""


@dataclass(frozen=True)
class ConsoleConfig:
    """How the console serves: ``tls`` sets the Secure cookie flag (the server is behind TLS)."""

    host: str = "127.0.0.1"
    port: int = 8765
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_lan: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def check(self) -> str | None:
        """Refuse an unsafe address; returns a warning to print for ``--insecure-lan``."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConsoleError("TLS needs both --tls-cert and --tls-key")
        for f in (self.tls_cert, self.tls_key):
            if f is not None and not Path(f).is_file():
                raise ConsoleError(f"TLS file {f} does not exist")
        if not 0 <= self.port <= 65535:
            raise ConsoleError(f"port {self.port} is not 0..65535")
        if is_loopback(self.host) or self.tls:
            return None
        if not self.insecure_lan:
            raise ConsoleError(f"listening on {self.host} exposes the console beyond this computer: give "
                               "--tls-cert and --tls-key, or --insecure-lan on a network you trust")
        return (f"WARNING: the console listens on {self.host} WITHOUT TLS: passwords and patient data cross the "
                "network in clear text. Use --tls-cert/--tls-key outside a trusted, closed network.")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- request bodies ---------------------------------------------------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(_Body):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)


class SetupBody(_Body):
    token: str = Field(..., max_length=200)
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)


class NewUser(_Body):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)
    role: str = Field(..., description="admin, therapist or observer")


class UserChange(_Body):
    role: str | None = None
    password: str | None = Field(None, max_length=1024)
    disabled: bool | None = None


class NewPatient(_Body):
    code: str = Field(..., max_length=64, description="a pseudonymous code: letters, digits, '-' and '_'")
    birth_year: int | None = Field(None, description="for age-dependent safety limits")
    notes: str = Field("", max_length=2000, description="no identifying information")


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return 400, f"the request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {json.dumps(got, default=str)[:60]})"
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}{shown}")
    return 422, "; ".join(parts) or "the request is not valid"


def create_app(accounts: Accounts, hub: ConsoleHub, *, store: Any = None, config: ConsoleConfig | None = None,
               can_start: bool = False) -> FastAPI:
    """The console's ASGI app. ``store`` is a :class:`~therapy.store.SessionStore` for patients and past
    sessions (``None``: those routes answer 503). ``can_start``: sessions may be started from the page (the
    standalone console; not when ``run --console`` already drives one)."""
    config = config or ConsoleConfig()
    app = FastAPI(title="vrex clinician console", version="1", docs_url=None, redoc_url=None,  # no CDN assets
                  description="Watch and steer live vrex sessions, manage patients, browse past sessions. "
                              "Log in with POST /api/login; send the returned csrf token as X-CSRF-Token on "
                              "every POST/PATCH.")
    store_lock = threading.Lock()
    registry = controls()
    fanout = Fanout(hub)

    # -- errors and headers --------------------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(AccountError)
    async def _account(request: Request, exc: AccountError) -> JSONResponse:
        headers = {"Retry-After": "60"} if exc.status == 429 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(LaunchError)
    async def _launch(request: Request, exc: LaunchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    for family in _user_error_families():
        @app.exception_handler(family)
        async def _user_error(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(TherapyError)
    async def _therapy(request: Request, exc: TherapyError) -> JSONResponse:
        status = 404 if str(exc).startswith(("no patient", "no session", "unknown patient")) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self' ws: wss:; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    # -- auth dependencies ---------------------------------------------------------------------------

    # async: cheap checks that run on the event loop, so a command does not wait for a worker thread
    async def logged_in(request: Request) -> Login:
        login = accounts.logged_in(request.cookies.get(COOKIE))
        if login is None:
            raise HTTPException(401, "log in first (POST /api/login)")
        return login

    async def csrf(request: Request, login: Login = Depends(logged_in)) -> Login:
        import hmac

        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, login.csrf):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header: reload the page")
        return login

    def role(needed: str, *, write: bool) -> Callable[..., Login]:
        base = csrf if write else logged_in

        async def dep(login: Login = Depends(base)) -> Login:
            if not login.user.may(needed):
                raise HTTPException(403, f"{login.user.username} is {login.user.role}: this needs the {needed} role")
            return login

        return dep

    reader = role("observer", write=False)
    therapist = role("therapist", write=True)
    admin_read = role("admin", write=False)
    admin_write = role("admin", write=True)

    def with_store() -> Any:
        if store is None:
            raise HTTPException(503, "this console has no session store")
        return store

    # -- page ----------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- login ---------------------------------------------------------------------------------------

    @app.get("/api/setup", tags=["login"], summary="whether the first admin still has to be created")
    def setup_state() -> dict:
        return {"pending": accounts.setup_pending(), "users": accounts.has_users()}

    @app.post("/api/setup", tags=["login"], summary="create the first admin with the one-time setup token")
    def setup(body: SetupBody) -> dict:
        user = accounts.complete_setup(body.token, body.username, body.password)
        return {"username": user.username, "role": user.role}

    @app.post("/api/login", tags=["login"], summary="log in; sets the session cookie, returns the CSRF token")
    def login(body: LoginBody, request: Request, response: Response) -> dict:
        client = request.client.host if request.client else "?"
        token, login = accounts.login(body.username, body.password, client)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=config.tls, path="/")
        return {"username": login.user.username, "role": login.user.role, "csrf": login.csrf}

    @app.post("/api/logout", tags=["login"], summary="log out (ends this login)")
    def logout(request: Request, response: Response, login: Login = Depends(csrf)) -> dict:
        accounts.logout(request.cookies.get(COOKIE))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=config.tls)
        return {"ok": True}

    @app.get("/api/me", tags=["login"], summary="who is logged in, and the CSRF token")
    def me(login: Login = Depends(logged_in)) -> dict:
        return {"username": login.user.username, "role": login.user.role, "csrf": login.csrf}

    # -- accounts (admin) ----------------------------------------------------------------------------

    @app.get("/api/users", tags=["accounts"])
    def users(login: Login = Depends(admin_read)) -> list[dict]:
        return accounts.users()

    @app.post("/api/users", tags=["accounts"], status_code=201)
    def add_user(body: NewUser, login: Login = Depends(admin_write)) -> dict:
        user = accounts.add_user(body.username, body.password, body.role)
        accounts.audit(login.user, "add_user", {"username": user.username, "role": user.role}, session_id=None,
                       command=None, outcome="done")
        return {"username": user.username, "role": user.role}

    @app.patch("/api/users/{username}", tags=["accounts"])
    def change_user(username: str, body: UserChange, login: Login = Depends(admin_write)) -> dict:
        accounts.update_user(username, role=body.role, password=body.password, disabled=body.disabled)
        changes = {k: v for k, v in body.model_dump().items() if v is not None and k != "password"}
        if body.password is not None:
            changes["password"] = "changed"
        accounts.audit(login.user, "change_user", {"username": username, **changes}, session_id=None, command=None,
                       outcome="done")
        return {"ok": True}

    @app.get("/api/audit", tags=["accounts"], summary="the audit log, newest first")
    def audit(session_id: str | None = None, limit: int = 200, login: Login = Depends(reader)) -> list[dict]:
        return accounts.audit_rows(session_id, max(1, min(limit, 5000)))

    # -- patients and past sessions ------------------------------------------------------------------

    def patient_dict(p) -> dict:
        return {"code": p.code, "birth_year": p.birth_year, "notes": p.notes,
                "resonance_breaths_per_min": p.resonance_breaths_per_min,
                "hierarchies": {env: [{"level": s.level, "note": s.note} for s in steps]
                                for env, steps in p.hierarchies.items()}}

    @app.get("/api/patients", tags=["patients"])
    def patients(login: Login = Depends(reader), st: Any = Depends(with_store)) -> list[dict]:
        with store_lock:
            return [patient_dict(p) | {"sessions": len(st.sessions(p.code))} for p in st.patients()]

    @app.post("/api/patients", tags=["patients"], status_code=201)
    def add_patient(body: NewPatient, login: Login = Depends(therapist), st: Any = Depends(with_store)) -> dict:
        with store_lock:
            p = st.add_patient(body.code, birth_year=body.birth_year, notes=body.notes)
        accounts.audit(login.user, "add_patient", {"code": p.code}, session_id=None, command=None, outcome="done")
        return patient_dict(p)

    @app.get("/api/patients/{code}", tags=["patients"])
    def patient(code: str, login: Login = Depends(reader), st: Any = Depends(with_store)) -> dict:
        with store_lock:
            p = st.find_patient(code)
            if p is None:
                raise HTTPException(404, f"no patient {code!r}: see GET /api/patients")
            return patient_dict(p) | {"sessions": [s.listing() for s in st.sessions(p.code)]}

    @app.get("/api/sessions", tags=["sessions"], summary="recorded sessions, oldest first")
    def sessions(patient: str | None = None, login: Login = Depends(reader), st: Any = Depends(with_store)) -> list[dict]:
        with store_lock:
            if patient is not None and st.find_patient(patient) is None:
                raise HTTPException(404, f"no patient {patient!r}: see GET /api/patients")
            return [s.listing() for s in st.sessions(patient)]

    @app.get("/api/sessions/{session_id}", tags=["sessions"],
             summary="one session: phases, levels, SUDS, alerts, notes and its HR/level series for the chart")
    def session(session_id: str, login: Login = Depends(reader), st: Any = Depends(with_store)) -> dict:
        with store_lock:
            details = st.session_details(session_id)
        details["series"] = session_series(Path(st.path), str(details["id"]))
        details["notes"] = accounts.notes(str(details["id"]))
        return details

    @app.get("/api/sessions/{session_id}/notes", tags=["sessions"])
    def session_notes(session_id: str, login: Login = Depends(reader), st: Any = Depends(with_store)) -> list[dict]:
        with store_lock:
            sid = st.session(session_id).id
        return accounts.notes(sid)

    @app.post("/api/sessions/{session_id}/notes", tags=["sessions"], status_code=201)
    def add_session_note(session_id: str, body: NoteBody, login: Login = Depends(therapist),
                         st: Any = Depends(with_store)) -> dict:
        with store_lock:
            sid = st.session(session_id).id
        note = accounts.add_note(sid, login.user, body.text, None)
        accounts.audit(login.user, "note", {"note_id": note["id"]}, session_id=sid, command=None, outcome="done")
        return note

    launcher = Launcher(hub, Path(store.data_dir)) if can_start and store is not None else None
    app.state.launcher = launcher

    @app.get("/api/start-session", tags=["sessions"], summary="whether a session started here is running")
    def start_state(login: Login = Depends(reader)) -> dict:
        return {"can_start": launcher is not None, **(launcher.state() if launcher else {})}

    @app.post("/api/start-session", tags=["sessions"], status_code=202,
              summary="start a session for a patient (standalone console only; one at a time)")
    def start_session(body: StartRequest, login: Login = Depends(therapist)) -> dict:
        if launcher is None:
            raise HTTPException(409, "this console shows a session started elsewhere ('run --console'): it cannot "
                                     "start another; use 'python main.py console' to start sessions from the page")
        params = body.model_dump()
        try:
            started = launcher.start(body, f"{login.user.role}:{login.user.username}")
        except Exception as exc:
            accounts.audit(login.user, "start_session", params, session_id=None, command=None,
                           outcome=f"refused: {exc}")
            raise
        accounts.audit(login.user, "start_session", params, session_id=None, command=None, outcome="started")
        return started

    # -- the live session ----------------------------------------------------------------------------

    @app.get("/api/live", tags=["live"], summary="the live session's snapshot and what can be done now")
    def live_state(login: Login = Depends(reader)) -> dict:
        live = hub.live
        return {
            "attached": live is not None,
            "snapshot": snapshot_dict(live.snapshot()) if live is not None else None,
            "view": hub.view_available(),
            "controls": [{"name": c.name, "summary": c.summary, "available": available(c.name)}
                         for c in registry.values()],
            "you": {"username": login.user.username, "role": login.user.role},
        }

    async def send_control(control: Control, body: BaseModel, login: Login) -> dict:
        """Check, send, then audit: the command goes to the session first (a STOP never waits for the audit
        log); its ``source`` carries a tag that links the audit row to the event the command causes."""
        live = hub.live
        params = body.model_dump()
        if live is None:
            raise HTTPException(409, "no session is running: start one with 'python main.py run ... --console'")
        snap = live.snapshot()
        try:
            command = control.build(body, snap, "console")
        except ControlError as exc:
            await run_in_threadpool(partial(accounts.audit, login.user, control.name, params,
                                            session_id=live.session_id, command=None, outcome=f"refused: {exc}"))
            raise HTTPException(exc.status, str(exc)) from None
        tag = f"[console {secrets.token_hex(5)}]"
        command = replace(command, source=f"{login.user.role}:{login.user.username} {tag}")
        hub.expect_effect(tag, _record_effect)
        live.commands.put(command)
        audit_id = None
        try:
            audit_id = await run_in_threadpool(partial(
                accounts.audit, login.user, control.name, params, session_id=live.session_id,
                command=type(command).__name__, outcome="sent", tag=tag))
        except Exception:  # the command is on its way; a failed audit write is logged, not a failed command
            log.exception("could not write the audit row of %s (%s)", control.name, tag)
        return {"audit_id": audit_id, "command": type(command).__name__, "source": command.source}

    def _record_effect(tag: str, event, latency_ms: float) -> None:
        accounts.audit_effect(tag, event.kind, event.t_s, event_dict(event), latency_ms)

    def add_control_route(control: Control) -> None:
        body_type = control.body

        async def endpoint(body: body_type = Body(...), login: Login = Depends(therapist)) -> dict:  # type: ignore[valid-type]
            return await send_control(control, body, login)

        app.post(f"/api/live/{control.name}", tags=["live"], summary=control.summary, status_code=202,
                 name=f"live_{control.name}")(endpoint)

    for c in registry.values():
        add_control_route(c)

    @app.post("/api/live/note", tags=["live"], status_code=201,
              summary="a note on the live session (kept by the console; also sent to the session when it can "
                      "record notes)")
    def live_note(body: NoteBody, login: Login = Depends(therapist)) -> dict:
        live = hub.live
        if live is None:
            raise HTTPException(409, "no session is running: notes on past sessions go to "
                                     "POST /api/sessions/{id}/notes")
        snap = live.snapshot()
        note = accounts.add_note(live.session_id, login.user, body.text, snap.now_s - snap.identity.t0_s)
        command = "AddNote" if hasattr(cmd, "AddNote") else None  # the record keeps it too, at its moment
        tag = f"[console {secrets.token_hex(5)}]" if command else None
        accounts.audit(login.user, "note", {"note_id": note["id"]}, session_id=live.session_id, command=command,
                       outcome="sent" if command else "done", tag=tag)
        if command:
            hub.expect_effect(tag, _record_effect)
            live.commands.put(cmd.AddNote(source=f"{login.user.role}:{login.user.username} {tag}",  # type: ignore[attr-defined]
                                          text=body.text))
        return note

    @app.get("/api/live/notes", tags=["live"])
    def live_notes(login: Login = Depends(reader)) -> list[dict]:
        live = hub.live
        return accounts.notes(live.session_id) if live is not None else []

    @app.get("/api/live/view.jpg", tags=["live"], summary="the patient's view now (JPEG, a few per second)",
             response_class=Response)
    def live_view(login: Login = Depends(reader)) -> Response:
        if hub.live is None or not hub.view_available():
            raise HTTPException(404, "no patient view: the session does not render, or this runner cannot "
                                     "share its frames")
        try:
            data = hub.view_jpeg()
        except TimeoutError:
            raise HTTPException(503, "the renderer did not deliver a frame in time") from None
        except Exception as exc:
            raise HTTPException(503, f"no frame: {exc}") from None
        if data is None:
            raise HTTPException(404, "no patient view")
        return Response(data, media_type="image/jpeg")

    @app.websocket("/api/live/ws")
    async def live_ws(websocket: WebSocket) -> None:
        """Sends ``{"type": "snapshot", "snapshot", "view", "history"}`` once, then ``{"type": "events", "items"}``
        batches and, when the session shares it, the patient's view as binary JPEG messages (4 a second)."""
        login = accounts.logged_in(websocket.cookies.get(COOKIE))
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host", "")
        if login is None or (origin is not None and origin.split("://", 1)[-1] != host):
            await websocket.close(code=4401 if login is None else 4403)
            return
        await websocket.accept()
        fanout.bind(asyncio.get_running_loop())
        live = hub.live
        if live is None:
            await websocket.send_text(json.dumps({"type": "idle"}))
            await websocket.close()
            return
        snap = live.snapshot()
        conn, history = await fanout.open(snap)
        try:
            head = json.dumps({"type": "snapshot", "snapshot": snapshot_dict(snap), "view": hub.view_available()})
            await websocket.send_text(head[:-1] + ',"history":[' + ",".join(history) + "]}")

            async def pump() -> None:
                while (msg := await conn.next_message()) is not None:
                    if isinstance(msg, bytes):
                        await websocket.send_bytes(msg)
                    else:
                        await websocket.send_text(msg)
                await websocket.close()  # a new session began: the page reconnects to it

            sender = asyncio.create_task(pump())
            receiver = asyncio.create_task(websocket.receive())
            try:
                while True:
                    done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
                    if sender in done:
                        break
                    msg = receiver.result()
                    if msg["type"] == "websocket.disconnect":
                        break
                    receiver = asyncio.create_task(websocket.receive())
            finally:
                for task in (sender, receiver):
                    task.cancel()
                for task in (sender, receiver):
                    with contextlib.suppress(BaseException):
                        await task
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            fanout.close(conn)

    return app


def _user_error_families() -> tuple[type[Exception], ...]:
    """The other packages' user-error families (a protocol that does not exist, a bad sensor spec...)."""
    from biofeedback.errors import BiofeedbackError
    from environments.errors import RenderError
    from protocols.errors import ProtocolError

    return (BiofeedbackError, RenderError, ProtocolError)


def session_series(db_path: Path, session_id: str) -> dict[str, list]:
    """A past session's HR and shown level over time (seconds from its start), read-only from the store's file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10.0)
    try:
        origin = conn.execute("SELECT clock_origin_s FROM sessions WHERE id=?", (session_id,)).fetchone()[0]
        hr = conn.execute("SELECT t_s, hr_bpm, arousal FROM hr_samples WHERE session_id=? ORDER BY t_s",
                          (session_id,)).fetchall()
        exposure = conn.execute("SELECT t_s, payload_json FROM events WHERE session_id=? AND kind='ExposureSampled' "
                                "ORDER BY seq", (session_id,)).fetchall()
    finally:
        conn.close()
    shown = []
    for t, payload in exposure:
        p = json.loads(payload)
        shown.append([round(t - origin, 3), None if p.get("safe_place") else p.get("level", 0) + p.get("intensity", 0)])
    return {"hr": [[round(t - origin, 3), h, a] for t, h, a in hr], "shown_level": shown}


class ConsoleServer:
    """uvicorn on its own thread and event loop; :meth:`start` returns once it listens."""

    def __init__(self, app: FastAPI, config: ConsoleConfig) -> None:
        import uvicorn

        self.config = config
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=config.host, port=config.port, log_level="warning", lifespan="off", ws="websockets-sansio",
            ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
            ssl_keyfile=str(config.tls_key) if config.tls_key else None,
            timeout_graceful_shutdown=2))
        self._server.install_signal_handlers = lambda: None  # the session's runner owns the signals
        self._thread = threading.Thread(target=self._main, name="vrex-console", daemon=True)
        self.error: BaseException | None = None
        self.port = config.port
        self.loop: asyncio.AbstractEventLoop | None = None

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self._server.serve()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # a console that dies must not take the session with it
            self.error = exc
            log.exception("the console server stopped")

    def start(self, timeout_s: float = 20.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConsoleError(f"the console could not listen on {self.config.host}:{self.config.port}"
                                   + (f": {self.error}" if self.error else " (is the port in use?)"))
            time.sleep(0.02)  # waiting for the socket to bind, not for the session
        sockets = [s for srv in getattr(self._server, "servers", []) for s in srv.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"{scheme}://{host}:{self.port}/"

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
