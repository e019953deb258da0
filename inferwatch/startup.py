"""What can stop ``inferwatch`` from starting, said in one or two lines: the thing, the setting
and the fix. ``StartupError`` carries such a message; the CLI prints it and exits 1 (with
``--log-level debug`` it shows the traceback as well).

* ``check_port(host, port, flag)``: the listen address is free (checked before any URL is
  printed).
* ``open_stores(url)``: the store opens and its schema migrates, or a sentence naming the
  database (password hidden) and what to check.
"""

from __future__ import annotations

import errno
import socket

import sqlalchemy as sa

from inferwatch.stores import Stores
from storage.retention import Retention

__all__ = ["StartupError", "check_port", "open_stores", "shown_url"]


class StartupError(Exception):
    """A problem the user can fix; ``str()`` is the whole message."""


def shown_url(url: str) -> str:
    """A storage URL as it may be printed: the password hidden.

    >>> shown_url("postgresql+psycopg://iw:s3cret@db.internal:5432/iw")
    'postgresql+psycopg://iw:***@db.internal:5432/iw'
    """
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]


def check_port(host: str, port: int, setting: str) -> None:
    """``StartupError`` when ``host:port`` cannot be listened on; ``setting`` says how to choose
    another (``web.listen in the config``, ``--port``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"inferwatch: cannot listen on {host}:{port}: the address is already in use "
                                   f"(another inferwatch?). Stop what uses it, or choose another port with "
                                   f"{setting}.") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise StartupError(f"inferwatch: cannot listen on {host}:{port}: no interface of this machine "
                                   f"has that address; use 127.0.0.1 or 0.0.0.0 ({setting}).") from None
            if exc.errno == errno.EACCES:
                raise StartupError(f"inferwatch: cannot listen on {host}:{port}: permission denied (ports below "
                                   f"1024 need privileges); choose a port above 1024 with {setting}.") from None
            raise StartupError(f"inferwatch: cannot listen on {host}:{port}: {exc.strerror or exc} "
                               f"({setting}).") from None


def _why(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def open_stores(url: str, retention: Retention | None = None) -> Stores:
    """Open the store and bring its schema up to date, or ``StartupError`` saying why."""
    shown = shown_url(url)
    try:
        stores = Stores.open(url, retention)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise StartupError(f"inferwatch: storage: {shown!r} is not a database URL ({_why(exc)}); write "
                           "sqlite:///path/to/inferwatch.db or postgresql+psycopg://user@host/db.") from None
    try:
        stores.migrate()
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError, OSError) as exc:
        stores.close()
        why = _why(exc)
        if url.startswith("sqlite"):
            path = sa.make_url(url).database or ":memory:"
            raise StartupError(f"inferwatch: cannot open the SQLite database {path} (storage: {shown}): {why}. "
                               "Check that its folder exists and is writable, or set storage: to another "
                               "path.") from None
        u = sa.make_url(url)
        raise StartupError(f"inferwatch: cannot use the database {u.database or ''} on {u.host or 'localhost'}:"
                           f"{u.port or 5432} (storage: {shown}): {why}. Is the server running and reachable, "
                           "and do the user and database exist?") from None
    return stores
