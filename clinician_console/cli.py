"""Command-line glue: ``python main.py console`` and the ``--console`` options of ``run`` and ``demo``.

The console is started *before* the session (so a therapist can log in while
the sensor connects) and attaches to it through a runner observer; it serves
from its own thread, so nothing it does can delay the session.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765


def add_options(p: argparse.ArgumentParser, *, standalone: bool = False) -> None:
    """``--host``, ``--port``, TLS and ``--insecure-lan`` (and ``--console`` on ``run``/``demo``)."""
    if not standalone:
        p.add_argument("--console", action="store_true",
                       help="serve the clinician console for this session (http://127.0.0.1:8765/ by default)")
    p.add_argument("--host", default="127.0.0.1",
                   help="console address (default 127.0.0.1; any other needs TLS or --insecure-lan)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"console port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="PEM", help="TLS certificate (with --tls-key)")
    p.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="TLS private key")
    p.add_argument("--insecure-lan", action="store_true",
                   help="allow a non-loopback --host without TLS (prints a warning; trusted networks only)")


@dataclass
class RunningConsole:
    """A started console: its server, hub and accounts (``stop()`` ends it; the session is untouched)."""

    server: object
    hub: object
    accounts: object
    url: str
    view: object = None  # the runner's patient view (see hub.runner_view), None without a runner

    def attach(self, live, runner: object | None = None) -> None:
        """Show ``live`` (a runner observer calls this), with ``runner``'s patient view when it offers one."""
        from clinician_console.hub import runner_view

        self.hub.attach(live, runner_view(runner) if runner is not None else self.view)

    def stop(self) -> None:
        self.server.stop()
        self.hub.close()
        self.accounts.close()


def start_console(args: argparse.Namespace, *, runner: object | None = None, out=None,
                  can_start: bool = False) -> RunningConsole:
    """Check the address, open the accounts and the store, create the first admin if needed, serve."""
    from clinician_console.accounts import Accounts
    from clinician_console.hub import ConsoleHub, runner_view
    from clinician_console.server import ConsoleConfig, ConsoleServer, create_app
    from therapy.store import default_data_dir, open_store

    out = out or sys.stderr
    config = ConsoleConfig(host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
                           insecure_lan=args.insecure_lan)
    warning = config.check()
    if warning:
        print(warning, file=out, flush=True)
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    store = open_store(data_dir)
    accounts = Accounts(Path(store.data_dir))
    token = accounts.bootstrap(os.environ.get("VREX_ADMIN_PASSWORD") or None)
    hub = ConsoleHub()
    app = create_app(accounts, hub, store=store, config=config, can_start=can_start)
    server = ConsoleServer(app, config)
    url = server.start()
    if token:
        print(f"vrex console: first start: create the admin account in the page with the one-time setup token "
              f"{token} (shown only now; or set VREX_ADMIN_PASSWORD)", file=out, flush=True)
    print(f"vrex console: {url}", file=out, flush=True)  # last: scripts may stop reading here
    return RunningConsole(server, hub, accounts, url, runner_view(runner) if runner is not None else None)


def start_for_session(args: argparse.Namespace) -> RunningConsole | None:
    """``run``/``demo``: the console when ``--console`` was given (address mistakes are user errors), else None."""
    if not getattr(args, "console", False):
        return None
    from clinician_console.server import ConsoleError
    from therapy.errors import TherapyError

    try:
        return start_console(args)
    except ConsoleError as exc:
        raise TherapyError(str(exc)) from None


def observer_for(console: RunningConsole):
    """The runner observer that shows each session the runner starts in ``console``."""
    return console.hub.observer(console.view)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``console`` (standalone: accounts, patients, past sessions)."""
    p = commands.add_parser(
        "console", help="serve the clinician console alone: accounts, patients and past sessions",
        description="Serve the clinician console without a session: manage accounts and patients, browse past "
                    "sessions with their charts and notes. To watch and steer a session, start it with "
                    "'run ... --console' or 'demo --console'.")
    add_options(p, standalone=True)
    p.add_argument("--data-dir", dest="data_dir", type=Path, default=None, metavar="DIR",
                   help="where patients and session records live (default: $VREX_DATA_DIR or the per-user dir)")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from clinician_console.server import ConsoleError
    from therapy.errors import TherapyError

    try:
        console = start_console(args, can_start=True)
    except ConsoleError as exc:
        raise TherapyError(str(exc)) from None
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            if not console.server._thread.is_alive():
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        console.stop()
    return 0
