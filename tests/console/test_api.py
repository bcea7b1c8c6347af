"""The console's REST API through FastAPI's TestClient: every route's login, role and CSRF guards, validation
messages, and audit rows linked to the session events the commands caused (on a real session)."""

from __future__ import annotations

import json

import pytest

from clinician_console.accounts import Accounts, RateLimiter
from clinician_console.controls import controls
from clinician_console.hub import ConsoleHub
from clinician_console.server import ConsoleConfig, ConsoleError, create_app
from tests.console.conftest import PASSWORDS, make_client

PUBLIC = {("GET", "/api/setup"), ("POST", "/api/setup"), ("POST", "/api/login")}
FILL = {"session_id": "nope", "code": "P01", "username": "alice"}


def routes(app) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            out.append((method.upper(), path.format(**FILL)))
    return out


def call(client, method: str, path: str, body=None, csrf: bool = True):
    headers = {"X-CSRF-Token": client.csrf} if csrf and client.csrf else {}
    return client.request(method, path, json=body if body is not None else ({} if method != "GET" else None),
                          headers=headers)


def test_openapi_documents_every_control(console):
    app, _ = console()
    paths = app.openapi()["paths"]
    for name in controls():
        assert f"/api/live/{name}" in paths
    assert "/api/live/ws" not in paths  # the WebSocket is described in the route's docstring, not OpenAPI
    assert len(routes(app)) >= 20


def test_anonymous_gets_401_everywhere(console):
    app, _ = console()
    client = make_client(app, None)
    for method, path in routes(app):
        if (method, path) in PUBLIC:
            continue
        r = call(client, method, path)
        assert r.status_code == 401, (method, path, r.text)
        assert "log in" in r.json()["detail"]


def test_observer_cannot_control_or_manage(console):
    app, _ = console()
    client = make_client(app, "olga")
    writes = [(m, p) for m, p in routes(app) if m != "GET" and (m, p) not in PUBLIC and p != "/api/logout"]
    assert writes
    for method, path in writes:
        r = call(client, method, path)
        assert r.status_code == 403, (method, path, r.text)
        assert "observer" in r.json()["detail"]
    assert call(client, "GET", "/api/live").status_code == 200  # watching is allowed
    assert call(client, "GET", "/api/users").status_code == 403  # accounts are the admin's


def test_missing_or_wrong_csrf_is_403(console):
    app, _ = console()
    client = make_client(app, "admin")
    for method, path in routes(app):
        if method == "GET" or (method, path) in PUBLIC:
            continue
        r = call(client, method, path, csrf=False)
        assert r.status_code == 403, (method, path, r.text)
        assert "X-CSRF-Token" in r.json()["detail"]
        r = client.request(method, path, json={}, headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 403, (method, path)


def test_login_cookie_flags_and_logout(console):
    app, _ = console()
    client = make_client(app, None)
    r = client.post("/api/login", json={"username": "alice", "password": PASSWORDS["alice"]})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert r.json()["role"] == "therapist" and r.json()["csrf"]
    client.csrf = r.json()["csrf"]
    assert client.get("/api/me").json()["username"] == "alice"
    assert call(client, "POST", "/api/logout").status_code == 200
    assert client.get("/api/me").status_code == 401


def test_secure_cookie_under_tls(tmp_path, accounts):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    app = create_app(accounts, ConsoleHub(), config=ConsoleConfig(tls_cert=cert, tls_key=cert))
    r = make_client(app, None).post("/api/login", json={"username": "alice", "password": PASSWORDS["alice"]})
    assert "secure" in r.headers["set-cookie"].lower()


def test_login_is_rate_limited(tmp_path):
    acc = Accounts(tmp_path, limiter=RateLimiter(limit=3, window_s=600))
    acc.bootstrap("admin-pass-1")
    client = make_client(create_app(acc, ConsoleHub()), None)
    for _ in range(3):
        r = client.post("/api/login", json={"username": "admin", "password": "wrong-password"})
        assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    r = client.post("/api/login", json={"username": "admin", "password": "admin-pass-1"})
    assert r.status_code == 429 and "too many failed logins" in r.json()["detail"]
    assert int(r.headers["retry-after"]) > 0


def test_passwords_are_argon2_hashed(accounts):
    rows = accounts._q("SELECT username, password_hash FROM users")
    for name, digest in rows:
        assert digest.startswith("$argon2id$") and PASSWORDS[name] not in digest


def test_first_start_setup_token(tmp_path):
    acc = Accounts(tmp_path)
    token = acc.bootstrap(None)
    assert token and acc.setup_pending()
    client = make_client(create_app(acc, ConsoleHub()), None)
    assert client.get("/api/setup").json() == {"pending": True, "users": False}
    bad = client.post("/api/setup", json={"token": "guess", "username": "boss", "password": "long-enough"})
    assert bad.status_code == 403 and "setup token is wrong" in bad.json()["detail"]
    short = client.post("/api/setup", json={"token": token, "username": "boss", "password": "short"})
    assert short.status_code == 422 and "too short" in short.json()["detail"]
    ok = client.post("/api/setup", json={"token": token, "username": "boss", "password": "long-enough"})
    assert ok.status_code == 200 and ok.json()["role"] == "admin"
    again = client.post("/api/setup", json={"token": token, "username": "eve", "password": "long-enough"})
    assert again.status_code == 409
    assert acc.bootstrap(None) is None  # an admin exists: no new token is ever printed
    assert acc._q("SELECT COUNT(*) FROM setup_token")[0][0] == 0


def test_admin_manages_accounts(console):
    app, _ = console()
    admin = make_client(app, "admin")
    r = call(admin, "POST", "/api/users", {"username": "sam", "password": "sam-password", "role": "observer"})
    assert r.status_code == 201
    assert call(admin, "POST", "/api/users", {"username": "sam", "password": "sam-password", "role": "observer"}
                ).status_code == 409
    r = call(admin, "POST", "/api/users", {"username": "x", "password": "long-enough", "role": "wizard"})
    assert r.status_code == 422 and "wizard" in r.json()["detail"]
    assert call(admin, "PATCH", "/api/users/sam", {"role": "therapist"}).status_code == 200
    assert call(admin, "PATCH", "/api/users/ghost", {"role": "therapist"}).status_code == 404
    r = call(admin, "PATCH", "/api/users/admin", {"role": "observer"})
    assert r.status_code == 409 and "only admin" in r.json()["detail"]
    users = {u["username"]: u["role"] for u in admin.get("/api/users").json()}
    assert users["sam"] == "therapist"
    therapist = make_client(app, "alice")
    assert call(therapist, "POST", "/api/users", {"username": "t2", "password": "long-enough",
                                                  "role": "admin"}).status_code == 403


def test_patients_and_validation_messages(console):
    app, _ = console()
    client = make_client(app, "alice")
    r = call(client, "POST", "/api/patients", {"code": "P07", "birth_year": 1980, "notes": "fear of heights"})
    assert r.status_code == 201 and r.json()["code"] == "P07"
    r = call(client, "POST", "/api/patients", {"code": "P07"})
    assert r.status_code == 400 and "already exists" in r.json()["detail"]
    r = call(client, "POST", "/api/patients", {"code": "John Smith"})
    assert r.status_code == 400 and "John Smith" in r.json()["detail"]
    r = call(client, "POST", "/api/patients", {"code": "P08", "birth_year": "1980"})
    assert r.status_code == 422 and "birth_year" in r.json()["detail"] and '"1980"' in r.json()["detail"]
    r = call(client, "POST", "/api/patients", {"code": "P08", "color": "red"})
    assert r.status_code == 422 and "color" in r.json()["detail"]
    r = client.post("/api/patients", content=b'{"code": "P09",', headers={"X-CSRF-Token": client.csrf,
                                                                          "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.get("/api/patients/NOBODY")
    assert r.status_code == 404 and "no patient 'NOBODY'" in r.json()["detail"]
    r = client.get("/api/sessions", params={"patient": "NOBODY"})
    assert r.status_code == 404 and "NOBODY" in r.json()["detail"]
    r = client.get("/api/sessions/doesnotexist")
    assert r.status_code == 404 and "no session" in r.json()["detail"]
    assert [p["code"] for p in client.get("/api/patients").json()] == ["P07"]
    assert client.get("/api/patients/P07").json()["sessions"] == []
    audit = client.get("/api/audit").json()
    assert audit[0]["action"] == "add_patient" and audit[0]["username"] == "alice"


def test_controls_without_a_session_are_409(console):
    app, _ = console()
    client = make_client(app, "alice")
    for name in controls():
        r = call(client, "POST", f"/api/live/{name}", {})
        assert r.status_code in (409, 422), (name, r.text)
    r = call(client, "POST", "/api/live/safe_place", {})
    assert r.status_code == 409 and "no session is running" in r.json()["detail"]
    assert call(client, "POST", "/api/live/note", {"text": "hello"}).status_code == 409
    assert client.get("/api/live").json()["attached"] is False
    assert client.get("/api/live/view.jpg").status_code == 404


def test_network_policy():
    assert ConsoleConfig().check() is None
    assert ConsoleConfig(host="::1").check() is None
    with pytest.raises(ConsoleError, match="--tls-cert and --tls-key, or --insecure-lan"):
        ConsoleConfig(host="0.0.0.0").check()
    warning = ConsoleConfig(host="0.0.0.0", insecure_lan=True).check()
    assert warning and "WITHOUT TLS" in warning
    with pytest.raises(ConsoleError, match="both"):
        ConsoleConfig(host="0.0.0.0", tls_cert=__file__).check()


# -- on a real session ---------------------------------------------------------------------------------

def test_live_controls_are_validated_audited_and_linked(make_live, console, accounts):
    """Every control on a real session: 4xx with a message when it does not fit, otherwise sent with the
    sender in ``source`` and its audit row linked to the session event it caused."""
    live = make_live(speed=20.0).start()
    app, store = console(live.hub)
    alice = make_client(app, "alice")
    olga = make_client(app, "olga")

    state = alice.get("/api/live").json()
    assert state["attached"] and state["snapshot"]["identity"]["patient"] == "P01"
    levels = state["snapshot"]["session_levels"]
    assert levels == list(range(len(state["snapshot"]["identity"]["levels"])))
    r = call(alice, "POST", "/api/live/set_level", {"level": 1, "confirm": True})
    assert r.status_code == 409 and "exposure phase" in r.json()["detail"]  # still in the baseline

    live.wait_exposure()
    snap = alice.get("/api/live").json()["snapshot"]
    current = snap["level"]
    r = call(alice, "POST", "/api/live/set_level", {"level": 99, "confirm": True})
    assert r.status_code == 422 and "level 99 is not one of this session's levels" in r.json()["detail"]
    r = call(alice, "POST", "/api/live/set_level", {"level": -1})
    assert r.status_code == 422 and "level" in r.json()["detail"]
    r = call(alice, "POST", "/api/live/set_level", {"level": current + 1})
    assert r.status_code == 428 and "confirm=true" in r.json()["detail"]
    r = call(alice, "POST", "/api/live/set_level", {"level": current + 3, "confirm": True})
    assert r.status_code == 428 and "jump=true" in r.json()["detail"]
    r = call(olga, "POST", "/api/live/set_level", {"level": current + 1, "confirm": True})
    assert r.status_code == 403
    r = call(alice, "POST", "/api/live/suds", {"value": 101})
    assert r.status_code == 422 and "value" in r.json()["detail"]
    r = call(alice, "POST", "/api/live/end", {})
    assert r.status_code == 428
    r = call(alice, "POST", "/api/live/resume", {"confirm": True})
    assert r.status_code == 409 and "safe place" in r.json()["detail"]

    n = len(live.watcher)
    r = call(alice, "POST", "/api/live/set_level", {"level": current + 1, "confirm": True})
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["command"] == "SetLevel" and sent["source"].startswith("therapist:alice [console ")
    changed = live.watcher.wait_for(lambda e: e.kind == "LevelChanged" and e.cause == "therapist", after=n)
    assert changed.level == current + 1 and sent["source"] in changed.reason
    assert accounts.wait_for_effect(sent["audit_id"], 30)

    r = call(alice, "POST", "/api/live/suds", {"value": 40})
    assert r.status_code == 202
    assert accounts.wait_for_effect(r.json()["audit_id"], 30)
    r = call(alice, "POST", "/api/live/note", {"text": "patient looks tense"})
    assert r.status_code == 201

    r = call(alice, "POST", "/api/live/safe_place", {})
    assert r.status_code == 202
    stop_id = r.json()["audit_id"]
    live.watcher.wait_for(lambda e: e.kind == "PhaseChanged" and e.phase.value == "safe_place", after=n)
    assert accounts.wait_for_effect(stop_id, 30)
    r = call(alice, "POST", "/api/live/resume", {"confirm": True})
    assert r.status_code == 202
    assert accounts.wait_for_effect(r.json()["audit_id"], 30)
    r = call(alice, "POST", "/api/live/end", {"confirm": True})
    assert r.status_code == 202
    end_id = r.json()["audit_id"]
    outcome = live.finish()
    assert outcome.status.value == "stopped" and "therapist:alice" in outcome.end_reason
    assert accounts.wait_for_effect(end_id, 30)

    rows = {row["id"]: row for row in alice.get("/api/audit", params={"session_id": outcome.session_id}).json()}
    level_row = rows[sent["audit_id"]]
    assert level_row["username"] == "alice" and level_row["role"] == "therapist"
    assert level_row["action"] == "set_level" and level_row["params"]["level"] == current + 1
    assert level_row["outcome"] == "applied" and level_row["event_kind"] == "LevelChanged"
    assert level_row["event"]["level"] == current + 1 and level_row["latency_ms"] is not None
    assert rows[stop_id]["event_kind"] in ("PhaseChanged", "LevelChanged")
    assert rows[end_id]["event_kind"] in ("SessionEnded", "PhaseChanged", "LevelChanged")
    refused = [row for row in rows.values() if row["outcome"].startswith("refused")]
    assert any("jump=true" in row["outcome"] for row in refused)  # refused attempts are audited too
    assert all(row["t_utc"] for row in rows.values())

    # the record itself names the console user on every command it applied
    details = alice.get(f"/api/sessions/{outcome.session_id}").json()
    assert details["status"] == "stopped"
    assert any("therapist:alice" in lv["reason"] for lv in details["levels"])
    assert any(s["value"] == 40 and "alice" in s["source"] for s in details["suds"])
    assert details["series"]["hr"] and details["notes"][0]["text"] == "patient looks tense"
    r = call(alice, "POST", f"/api/sessions/{outcome.session_id}/notes", {"text": "follow-up next week"})
    assert r.status_code == 201
    assert len(alice.get(f"/api/sessions/{outcome.session_id}/notes").json()) == 2
    r = call(alice, "POST", "/api/live/safe_place", {})
    assert r.status_code == 409 and "ended" in r.json()["detail"]


def test_websocket_sends_snapshot_then_events(make_live, console):
    live = make_live(speed=20.0).start()
    app, _ = console(live.hub)
    anon = make_client(app, None)
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as info, anon.websocket_connect("/api/live/ws") as ws:
        ws.receive_text()
    assert info.value.code == 4401
    client = make_client(app, "olga")
    with client.websocket_connect("/api/live/ws") as ws:
        first = json.loads(ws.receive_text())
        assert first["type"] == "snapshot"
        snap = first["snapshot"]
        assert snap["identity"]["session_id"] == live.live.session_id and "session_levels" in snap
        kinds: set[str] = set()
        while "HeartSampled" not in kinds:
            msg = json.loads(ws.receive_text())
            assert msg["type"] == "events"
            for item in msg["items"]:
                kinds.add(item["kind"])
                assert item["t_s"] >= snap["now_s"] - 1e-9 or item["kind"] == "BeatRecorded"
    live.finish()


def test_an_effect_faster_than_its_audit_row_is_still_linked(accounts):
    """The command is sent before its audit row is written, so its event may arrive first."""
    from clinician_console.accounts import User

    accounts.audit_effect("[console abc]", "PhaseChanged", 12.5, {"phase": "safe_place"}, 3.0)
    audit_id = accounts.audit(User("alice", "therapist"), "safe_place", {}, session_id="s1", command="GoToSafePlace",
                              outcome="sent", tag="[console abc]")
    assert accounts.wait_for_effect(audit_id, 0)
    row = accounts.audit_rows("s1")[0]
    assert row["outcome"] == "applied" and row["event_kind"] == "PhaseChanged" and row["latency_ms"] == 3.0


def test_accept_and_decline_offered_step_ups(make_live, console, accounts):
    """The controller offers step-ups for the therapist to confirm (heights-graded: step_up = "confirm")."""
    live = make_live(speed=40.0).start()
    app, _ = console(live.hub)
    alice = make_client(app, "alice")
    live.wait_exposure()
    r = call(alice, "POST", "/api/live/accept_step_up", {"confirm": True})
    if r.status_code == 409:
        assert "no step-up is waiting" in r.json()["detail"]
    n = len(live.watcher)
    offer = live.watcher.wait_for(lambda e: e.kind == "StepUpOffered", 300, after=n)
    r = call(alice, "POST", "/api/live/accept_step_up", {})
    assert r.status_code == 428 and "confirm=true" in r.json()["detail"]
    r = call(alice, "POST", "/api/live/accept_step_up", {"confirm": True})
    assert r.status_code == 202, r.text
    resolved = live.watcher.wait_for(lambda e: e.kind == "StepUpResolved", after=n)
    assert resolved.outcome == "accepted" and "therapist:alice" in resolved.who
    raised = live.watcher.wait_for(lambda e: e.kind == "LevelChanged" and e.level == offer.to_level, after=n)
    assert raised.level > offer.from_level
    assert accounts.wait_for_effect(r.json()["audit_id"], 30)
    n = len(live.watcher)
    live.watcher.wait_for(lambda e: e.kind == "StepUpOffered", 300, after=n)
    r = call(alice, "POST", "/api/live/decline_step_up", {"reason": "patient asked to stay"})
    assert r.status_code == 202
    declined = live.watcher.wait_for(lambda e: e.kind == "StepUpResolved", after=n)
    assert declined.outcome == "declined" and declined.reason == "patient asked to stay"
    row = accounts.audit_rows(live.live.session_id)[0]
    assert row["action"] == "decline_step_up" and row["event_kind"] == "StepUpResolved"
    live.finish()


def test_the_standalone_console_starts_a_session(console, tmp_path):
    """``python main.py console`` starts sessions through the same runner; mistakes are 4xx before anything
    runs; the started session shows up live, can be ended from the console and is recorded."""
    hub = ConsoleHub()
    app, store = console(hub, can_start=True)
    alice = make_client(app, "alice")
    assert alice.get("/api/start-session").json()["can_start"] is True
    assert call(alice, "POST", "/api/patients", {"code": "P01", "birth_year": 1990}).status_code == 201
    r = call(alice, "POST", "/api/start-session", {"patient": "NOBODY"})
    assert r.status_code == 404 and "NOBODY" in r.json()["detail"]
    r = call(alice, "POST", "/api/start-session", {"patient": "P01", "protocol": "no-such-protocol"})
    assert r.status_code == 400 and "no-such-protocol" in r.json()["detail"]
    r = call(alice, "POST", "/api/start-session", {"patient": "P01", "minutes": 1.0})
    assert r.status_code == 400 and "too short" in r.json()["detail"]
    r = call(alice, "POST", "/api/start-session", {"patient": "P01", "sensor": "ble:AA", "speed": 5.0})
    assert r.status_code == 422 and "simulated sensor" in r.json()["detail"]
    r = call(make_client(app, "olga"), "POST", "/api/start-session", {"patient": "P01"})
    assert r.status_code == 403
    r = call(alice, "POST", "/api/start-session", {"patient": "P01", "speed": 40.0, "display": "none",
                                                  "simulated_patient": True})
    assert r.status_code == 202, r.text
    live = hub.wait_attached(60)
    assert live is not None and live.identity.patient == "P01"
    r = call(alice, "POST", "/api/start-session", {"patient": "P01", "display": "none"})
    assert r.status_code == 409 and "already running" in r.json()["detail"]
    assert call(alice, "POST", "/api/live/end", {"confirm": True}).status_code == 202
    assert app.state.launcher.wait(60)
    state = alice.get("/api/start-session").json()
    assert state["running"] is False and state["last_outcome"]["status"] == "stopped"
    sessions = alice.get("/api/sessions", params={"patient": "P01"}).json()
    assert [s["status"] for s in sessions] == ["stopped"]
    assert store.session(sessions[0]["id"]).metadata["started_by"] == "therapist:alice"
    actions = [row["action"] for row in alice.get("/api/audit").json()]
    assert "start_session" in actions and "end" in actions
    # a console attached to a session run elsewhere ('run --console') cannot start another
    app2, _ = console(ConsoleHub())
    r = call(make_client(app2, "alice"), "POST", "/api/start-session", {"patient": "P01"})
    assert r.status_code == 409 and "cannot start another" in r.json()["detail"]
