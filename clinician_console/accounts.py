"""Console accounts, logins, the audit log and session notes, in ``console.sqlite3`` beside the session store.

A separate file (not new tables in ``vrex.sqlite3``) keeps the session store's
schema and migrations owned by the therapy package alone, while still living
in the same data directory (one backup, one place to delete a clinic's data).

Why each rule is here:

* passwords are hashed with argon2id (argon2-cffi), never stored or logged;
* the first start creates an admin: from ``VREX_ADMIN_PASSWORD`` when set, else
  a one-time setup token is printed once and only its hash is kept;
* login sessions live in memory only (a restarted console asks to log in again;
  a stolen database file holds no live login), each with its own CSRF token;
* failed logins are rate limited per client address and per user name, so a
  password cannot be guessed from the LAN at machine speed.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

DB_NAME = "console.sqlite3"
ROLES = ("observer", "therapist", "admin")
#: what each role may do, by rank: observers watch, therapists also control, admins also manage accounts.
RANK = {role: i for i, role in enumerate(ROLES)}
MIN_PASSWORD_CHARS = 8
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
LOGIN_TTL_S = 12 * 3600.0  # a working day; an idle console is logged out by then

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS setup_token (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_utc TEXT NOT NULL,
    username TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    params_json TEXT NOT NULL,
    session_id TEXT,
    command TEXT,
    outcome TEXT NOT NULL,
    event_kind TEXT,
    event_t_s REAL,
    event_json TEXT,
    latency_ms REAL,
    tag TEXT
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    t_utc TEXT NOT NULL,
    session_t_s REAL,
    username TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_by_session ON notes(session_id, id);
CREATE INDEX IF NOT EXISTS audit_by_session ON audit(session_id, id);
CREATE INDEX IF NOT EXISTS audit_by_tag ON audit(tag);
"""


class AccountError(Exception):
    """A user mistake about accounts (the API maps it to 4xx with this message)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: str

    def may(self, role: str) -> bool:
        """True when this user's role ranks at least ``role``."""
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True, slots=True)
class Login:
    """One logged-in browser: who, its CSRF token, and when it expires (monotonic seconds)."""

    user: User
    csrf: str
    expires_s: float


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_username(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 32 or not set(name) <= USERNAME_CHARS:
        raise AccountError(f"user name {name!r} is not valid: use 1-32 letters, digits, '.', '_' or '-'", 422)
    return name


def validate_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password is too short: use at least {MIN_PASSWORD_CHARS} characters", 422)
    return password


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}", 422)
    return role


class RateLimiter:
    """At most ``limit`` failures per key within ``window_s``; a success does not erase earlier failures."""

    def __init__(self, limit: int = 5, window_s: float = 60.0, clock=time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._fails: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def retry_after_s(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for every key (0: allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._fails[key]
                while q and now - q[0] > self.window_s:
                    q.popleft()
                if len(q) >= self.limit:
                    wait = max(wait, self.window_s - (now - q[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._fails[key].append(now)


class Accounts:
    """Users, logins, audit rows and notes of one data directory. Thread-safe (one connection, one lock)."""

    def __init__(self, data_dir: Path, *, hasher: PasswordHasher | None = None,
                 limiter: RateLimiter | None = None) -> None:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the program crashing (not a power cut) and costs no fsync, so
        # writing an audit row never delays the next command
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(SCHEMA)
        self._hasher = hasher or PasswordHasher()
        self.limiter = limiter or RateLimiter()
        self._logins: dict[str, Login] = {}
        self._effects = threading.Condition()
        self._linked: set[int] = set()
        self._early: dict[str, tuple] = {}  # effects that arrived before their audit row

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _q(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- first start ----------------------------------------------------------------------------

    def has_users(self) -> bool:
        return bool(self._q("SELECT 1 FROM users LIMIT 1"))

    def bootstrap(self, admin_password: str | None) -> str | None:
        """Make sure an admin can log in: create ``admin`` from ``admin_password`` when given, else return a
        new one-time setup token (shown once; only its hash is kept). ``None`` when users already exist."""
        if self.has_users():
            return None
        if admin_password:
            self.add_user("admin", admin_password, "admin")
            return None
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO setup_token (id, token_hash, created_utc) VALUES (1, ?, ?)",
                               (_digest(token), _utc_now()))
        return token

    def complete_setup(self, token: str, username: str, password: str) -> User:
        """Create the first admin with the one-time token; the token is gone afterwards."""
        row = self._q("SELECT token_hash FROM setup_token WHERE id=1")
        if self.has_users() or not row:
            raise AccountError("set-up is already complete: log in instead", 409)
        if not hmac.compare_digest(row[0][0], _digest(token or "")):
            raise AccountError("the setup token is wrong: use the one the console printed when it started", 403)
        user = self.add_user(username, password, "admin")
        with self._lock:
            self._conn.execute("DELETE FROM setup_token")
        return user

    def setup_pending(self) -> bool:
        return not self.has_users() and bool(self._q("SELECT 1 FROM setup_token"))

    # -- users ----------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, role: str) -> User:
        username, role = validate_username(username), validate_role(role)
        digest = self._hasher.hash(validate_password(password))
        try:
            with self._lock:
                self._conn.execute("INSERT INTO users (username, role, password_hash, created_utc) VALUES (?,?,?,?)",
                                   (username, role, digest, _utc_now()))
        except sqlite3.IntegrityError:
            raise AccountError(f"user {username} already exists", 409) from None
        return User(username, role)

    def users(self) -> list[dict[str, object]]:
        return [{"username": u, "role": r, "created_utc": c, "disabled": bool(d)}
                for u, r, c, d in self._q("SELECT username, role, created_utc, disabled FROM users ORDER BY username")]

    def update_user(self, username: str, *, role: str | None = None, password: str | None = None,
                    disabled: bool | None = None) -> None:
        if not self._q("SELECT 1 FROM users WHERE username=?", (username,)):
            raise AccountError(f"no user {username!r}", 404)
        if role is not None:
            validate_role(role)
            if role != "admin" or disabled:
                self._keep_an_admin(username)
            self._q("UPDATE users SET role=? WHERE username=?", (role, username))
        if disabled is not None:
            if disabled:
                self._keep_an_admin(username)
            self._q("UPDATE users SET disabled=? WHERE username=?", (int(disabled), username))
        if password is not None:
            self._q("UPDATE users SET password_hash=? WHERE username=?",
                    (self._hasher.hash(validate_password(password)), username))
        if role is not None or disabled or password is not None:  # changed rights end that user's logins
            with self._lock:
                for token, login in list(self._logins.items()):
                    if login.user.username == username:
                        del self._logins[token]

    def _keep_an_admin(self, username: str) -> None:
        admins = {u for (u,) in self._q("SELECT username FROM users WHERE role='admin' AND disabled=0")}
        if admins == {username}:
            raise AccountError(f"{username} is the only admin: make another admin first", 409)

    # -- logins ---------------------------------------------------------------------------------

    def login(self, username: str, password: str, client: str) -> tuple[str, Login]:
        """Check the password (rate limited per client and per name); returns the cookie token and the login."""
        keys = (f"ip:{client}", f"user:{(username or '').lower()}")
        wait = self.limiter.retry_after_s(*keys)
        if wait > 0:
            raise AccountError(f"too many failed logins: try again in {int(wait) + 1} s", 429)
        row = self._q("SELECT role, password_hash, disabled FROM users WHERE username=?", (username or "",))
        ok = False
        if row and not row[0][2]:
            try:
                ok = self._hasher.verify(row[0][1], password or "")
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
        else:  # spend the same time as a real check, so timing does not reveal which names exist
            try:
                self._hasher.verify(self._dummy_hash(), password or "")
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                pass
        if not ok:
            self.limiter.failed(*keys)
            raise AccountError("wrong user name or password", 401)
        if self._hasher.check_needs_rehash(row[0][1]):
            self._q("UPDATE users SET password_hash=? WHERE username=?", (self._hasher.hash(password), username))
        token = secrets.token_urlsafe(32)
        login = Login(User(username, row[0][0]), secrets.token_urlsafe(24), time.monotonic() + LOGIN_TTL_S)
        with self._lock:
            self._logins[_digest(token)] = login
        return token, login

    _dummy: str | None = None

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_hex(8))
        return self._dummy

    def logged_in(self, token: str | None) -> Login | None:
        if not token:
            return None
        key = _digest(token)
        with self._lock:
            login = self._logins.get(key)
            if login is not None and login.expires_s < time.monotonic():
                del self._logins[key]
                login = None
        return login

    def logout(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._logins.pop(_digest(token), None)

    # -- audit ----------------------------------------------------------------------------------

    def audit(self, user: User, action: str, params: dict[str, object], *, session_id: str | None,
              command: str | None, outcome: str, tag: str | None = None) -> int:
        """One control action (sent or refused); returns its id. ``tag`` is the marker the command's ``source``
        carries; an effect that arrived before this row (the command is sent first) is linked at once."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO audit (t_utc, username, role, action, params_json, session_id, command, outcome, tag) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (_utc_now(), user.username, user.role, action, json.dumps(params, default=str), session_id, command,
                 outcome, tag))
            audit_id = int(cur.lastrowid)
            early = self._early.pop(tag, None) if tag else None
        if early is not None:
            self._link(audit_id, *early)
        return audit_id

    def audit_effect(self, tag: str, event_kind: str, event_t_s: float, event: dict[str, object],
                     latency_ms: float | None) -> None:
        """Link the audit row carrying ``tag`` to the session event its command caused (kept until the row
        exists, when the event was faster than the row)."""
        with self._lock:
            row = self._conn.execute("SELECT id FROM audit WHERE tag=?", (tag,)).fetchone()
            if row is None:
                self._early[tag] = (event_kind, event_t_s, event, latency_ms)
                return
        self._link(int(row[0]), event_kind, event_t_s, event, latency_ms)

    def _link(self, audit_id: int, event_kind: str, event_t_s: float, event: dict[str, object],
              latency_ms: float | None) -> None:
        refused = event_kind == "SafetyAlert" and event.get("code") == "command_refused"
        self._q("UPDATE audit SET event_kind=?, event_t_s=?, event_json=?, latency_ms=?, outcome=? WHERE id=?",
                (event_kind, event_t_s, json.dumps(event, default=str), latency_ms,
                 "refused by the session" if refused else "applied", audit_id))
        with self._effects:
            self._linked.add(audit_id)
            self._effects.notify_all()

    def wait_for_effect(self, audit_id: int, timeout_s: float) -> bool:
        """Block until the session event of ``audit_id`` is linked (tests, benchmarks); ``False`` on timeout."""
        with self._effects:
            return self._effects.wait_for(lambda: audit_id in self._linked, timeout_s)

    def audit_rows(self, session_id: str | None = None, limit: int = 500) -> list[dict[str, object]]:
        cols = ("id", "t_utc", "username", "role", "action", "params_json", "session_id", "command", "outcome",
                "event_kind", "event_t_s", "event_json", "latency_ms")
        sql = f"SELECT {', '.join(cols)} FROM audit"
        rows = self._q(sql + (" WHERE session_id=?" if session_id else "") + " ORDER BY id DESC LIMIT ?",
                       ((session_id, limit) if session_id else (limit,)))
        out = []
        for r in rows:
            d = dict(zip(cols, r, strict=True))
            d["params"] = json.loads(d.pop("params_json"))
            d["event"] = json.loads(d.pop("event_json")) if d["event_json"] else None
            out.append(d)
        return out

    # -- notes ----------------------------------------------------------------------------------

    def add_note(self, session_id: str, user: User, text: str, session_t_s: float | None) -> dict[str, object]:
        text = (text or "").strip()
        if not 1 <= len(text) <= 4000:
            raise AccountError("a note needs 1-4000 characters of text", 422)
        t_utc = _utc_now()
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO notes (session_id, t_utc, session_t_s, username, text) VALUES (?,?,?,?,?)",
                (session_id, t_utc, session_t_s, user.username, text))
        return {"id": cur.lastrowid, "session_id": session_id, "t_utc": t_utc, "session_t_s": session_t_s,
                "username": user.username, "text": text}

    def notes(self, session_id: str) -> list[dict[str, object]]:
        return [{"id": i, "session_id": s, "t_utc": t, "session_t_s": st, "username": u, "text": x}
                for i, s, t, st, u, x in self._q(
                    "SELECT id, session_id, t_utc, session_t_s, username, text FROM notes WHERE session_id=? "
                    "ORDER BY id", (session_id,))]
