"""Start the labelling page: ``streamlit run app.py`` on 127.0.0.1, headless, no telemetry."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .settings import UiSettings, check_bind, load_password, parse_settings

LOG = logging.getLogger(__name__)

APP = Path(__file__).with_name("app.py")


def streamlit_command(settings: UiSettings, python: str = sys.executable) -> list[str]:
    """Return the command line that serves the page with ``settings``."""
    return [
        python, "-m", "streamlit", "run", str(APP),
        "--server.address", settings.address,
        "--server.port", str(settings.port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--server.enableXsrfProtection", "true",
        "--server.enableStaticServing", "false",
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "viewer",
        "--global.developmentMode", "false",
        "--", *settings.app_args(),
    ]


def prepare(argv: Sequence[str] | None = None) -> list[str]:
    """Parse and check the arguments; return the streamlit command (ValueError when refused)."""
    settings = parse_settings(argv)
    check_bind(settings.address, load_password(settings))
    return streamlit_command(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: check the settings, then replace this process with the Streamlit server."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        command = prepare(argv)
    except ValueError as exc:
        LOG.error("%s", exc)
        return 2
    try:
        import streamlit  # noqa: F401
    except ImportError:
        LOG.error("streamlit is not installed: pip install streamlit (or the 'ui' extra)")
        return 2
    LOG.info("serving the labelling page: %s", " ".join(command[1:5]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return
