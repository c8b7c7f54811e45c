"""Start-time settings of the labelling page: store location, bind address, password.

Everything here is fixed when the page starts (command line or environment); the page itself
never takes a path or reads a file on a visitor's request. Shared by the launcher
(``python -m visio_memoria_ros.ui``) and the Streamlit script (``app.py``).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import fully_qualified_name, load_node_params
from ..config import memory as memory_config
from ..memory import MemoryStore, is_url
from ..memory import open_store as open_memory

LOG = logging.getLogger(__name__)

#: Environment variable naming the memory, a file or a URL (overrides the memory_node defaults).
DB_ENV = "VISIO_MEMORIA_DB"
#: Environment variable holding the page's password (empty or unset = no password).
PASSWORD_ENV = "VISIO_MEMORIA_UI_PASSWORD"
#: Environment variable naming a file that holds the page's password.
PASSWORD_FILE_ENV = "VISIO_MEMORIA_UI_PASSWORD_FILE"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class UiSettings:
    """How the page was started: which store, where it listens, where its password is."""

    db: str = ""
    params_file: str = ""
    namespace: str = "/"
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    password_file: str = ""
    password_env: str = PASSWORD_ENV
    read_only: bool = False

    def app_args(self) -> list[str]:
        """Return the arguments that hand these settings to ``app.py`` (no secret in them)."""
        args = ["--address", self.address, "--port", str(self.port),
                "--password-env", self.password_env]
        if self.db:
            args += ["--db", self.db]
        if self.params_file:
            args += ["--params-file", self.params_file, "--namespace", self.namespace]
        if self.password_file:
            args += ["--password-file", self.password_file]
        if self.read_only:
            args.append("--read-only")
        return args


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of the labelling page."""
    p = argparse.ArgumentParser(
        prog="python -m visio_memoria_ros.ui",
        description="Serve the visio_memoria labelling page (Streamlit) for one memory store.",
    )
    p.add_argument("--db", default=os.environ.get(DB_ENV, ""),
                   help=f"the memory (env {DB_ENV}): an SQLite file, sqlite:///path or "
                   "postgresql://user@host:port/dbname (password from PGPASSWORD or "
                   "~/.pgpass); default: the memory_node's <data_dir>/memory.db, i.e. "
                   "~/.local/share/visio_memoria/memory.db")
    p.add_argument("--params-file", default="",
                   help="ROS parameter YAML whose memory_node section locates and opens the "
                   "store (data_dir, db_path, crop_format, encryption_key_file/env...)")
    p.add_argument("--namespace", default="/",
                   help="read --params-file as the memory_node launched in this ROS namespace "
                   "does (sections such as /NS/memory_node apply; default /)")
    p.add_argument("--address", default=DEFAULT_ADDRESS,
                   help="address to listen on (default 127.0.0.1; anything but loopback "
                   "needs a password)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8501)")
    p.add_argument("--password-file", default=os.environ.get(PASSWORD_FILE_ENV, ""),
                   help=f"file holding the page's password (env {PASSWORD_FILE_ENV})")
    p.add_argument("--password-env", default=PASSWORD_ENV,
                   help=f"environment variable holding the password (default {PASSWORD_ENV})")
    p.add_argument("--read-only", action="store_true",
                   help="open the store read-only: browse, but change nothing")
    return p


def parse_settings(argv: Sequence[str] | None = None) -> UiSettings:
    """Parse command-line arguments (and their environment defaults) into UiSettings."""
    ns = build_parser().parse_args(list(argv) if argv is not None else None)
    if not 1 <= ns.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {ns.port}")
    db = ns.db.strip() if ns.db and is_url(ns.db) else (
        str(Path(ns.db).expanduser().absolute()) if ns.db else "")
    params_file = str(Path(ns.params_file).expanduser().absolute()) if ns.params_file else ""
    password_file = (str(Path(ns.password_file).expanduser().absolute())
                     if ns.password_file else "")
    fully_qualified_name("memory_node", ns.namespace)  # refuses an invalid namespace
    return UiSettings(db=db, params_file=params_file, namespace=ns.namespace,
                      address=ns.address.strip(),
                      port=ns.port, password_file=password_file,
                      password_env=ns.password_env, read_only=ns.read_only)


def load_password(settings: UiSettings) -> str | None:
    """Return the page's password (file first, then environment), or None when there is none."""
    if settings.password_file:
        path = Path(settings.password_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the password file {path}: {exc}") from exc
        password = text.strip("\r\n")
        if not password:
            raise ValueError(f"the password file {path} is empty")
        if path.stat().st_mode & 0o077:
            LOG.warning("password file %s is readable by others; chmod 600 it", path)
        return password
    value = os.environ.get(settings.password_env, "") if settings.password_env else ""
    return value or None


def check_password(given: str, expected: str) -> bool:
    """True when ``given`` equals ``expected`` (constant-time comparison)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def is_loopback(address: str) -> bool:
    """True when ``address`` only accepts connections from this machine."""
    address = (address or "").strip().strip("[]")
    if address.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_bind(address: str, password: str | None) -> None:
    """Raise ValueError when the page would listen beyond this machine without a password."""
    if password is None and not is_loopback(address):
        shown = address or "all interfaces"
        raise ValueError(
            f"refusing to serve the labelling page on {shown} without a password: faces and "
            f"names are personal data. Set {PASSWORD_ENV} or --password-file, or listen on "
            "127.0.0.1")


def store_params(settings: UiSettings) -> dict[str, Any]:
    """Return memory_node parameters for memory.open_store, with the page's overrides."""
    params = load_node_params("memory_node", memory_config.PARAMS,
                              settings.params_file or None, namespace=settings.namespace)
    if settings.db and is_url(settings.db):
        params["db_path"] = settings.db  # postgresql://... (an unknown scheme is refused)
    elif settings.db:
        # The file's own directory is the data directory: nothing is created elsewhere.
        params["data_dir"] = str(Path(settings.db).parent)
        params["db_path"] = settings.db
    params["read_only"] = settings.read_only
    return params


def open_store(settings: UiSettings) -> MemoryStore:
    """Open the memory store the page works on (same resolution as the memory node)."""
    return open_memory(store_params(settings))  # type: ignore[no-any-return]
