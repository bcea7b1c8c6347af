"""The command line: ``console`` serves alone (first start prints a one-time setup token, once), and
``run``/``demo --console`` refuse an exposed address without TLS or ``--insecure-lan`` before anything runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VREX_ADMIN_PASSWORD"}
    env.update(VREX_DATA_DIR=str(tmp_path), **extra)
    return env


def _serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, list[str]]:
    proc = subprocess.Popen([sys.executable, "main.py", "console", "--port", "0"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    url = None
    for line in proc.stderr:  # the console prints the setup token (first start only), then where it listens
        lines.append(line)
        m = re.search(r"vrex console: (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, "".join(lines)
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
    return proc, url, lines


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_console_first_start_prints_a_setup_token_once(tmp_path: Path):
    proc, url, lines = _serve(tmp_path, _env(tmp_path))
    try:
        token = re.search(r"setup token (\S+)", "".join(lines)).group(1)
        client = httpx.Client(base_url=url)
        assert client.get("/api/setup").json()["pending"] is True
        assert client.get("/api/patients").status_code == 401
        r = client.post("/api/setup", json={"token": token, "username": "boss", "password": "a-long-password"})
        assert r.status_code == 200
        r = client.post("/api/login", json={"username": "boss", "password": "a-long-password"})
        assert r.status_code == 200 and r.json()["role"] == "admin"
        assert client.get("/api/patients").json() == []
        assert client.get("/api/start-session").json()["can_start"] is True
    finally:
        _stop(proc)
    assert proc.returncode == 0
    proc, url, lines = _serve(tmp_path, _env(tmp_path))  # an admin exists now: no token is printed again
    try:
        assert httpx.get(url + "api/setup").json() == {"pending": False, "users": True}
    finally:
        _stop(proc)
    assert not any("setup token" in line for line in lines)


def test_admin_password_from_the_environment(tmp_path: Path):
    proc, url, lines = _serve(tmp_path, _env(tmp_path, VREX_ADMIN_PASSWORD="from-the-env-1"))
    try:
        r = httpx.post(url + "api/login", json={"username": "admin", "password": "from-the-env-1"})
        assert r.status_code == 200
    finally:
        _stop(proc)
    assert not any("setup token" in line for line in lines)


def test_exposed_address_needs_tls_or_insecure_lan(tmp_path: Path):
    r = subprocess.run([sys.executable, "main.py", "demo", "--console", "--host", "0.0.0.0", "--display", "headless",
                        "--data-dir", str(tmp_path)], cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert "--tls-cert and --tls-key, or --insecure-lan" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "main.py", "console", "--host", "0.0.0.0", "--tls-cert", "missing.pem",
                        "--tls-key", "missing.pem"], cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "missing.pem does not exist" in r.stderr
