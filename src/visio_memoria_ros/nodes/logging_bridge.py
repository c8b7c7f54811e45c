"""The library rooms' ``logging`` records, forwarded to the ROS logger (console and rosout)."""

from __future__ import annotations

import logging

import rclpy

#: The Python logger every library room logs under (``logging.getLogger(__name__)``).
LIBRARY_LOGGER = "visio_memoria_ros"


class RosLogHandler(logging.Handler):
    """Forwards the library rooms' ``logging`` records to the ROS logger (same format, rosout)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record to the rclpy logger of the same name."""
        try:
            logger = rclpy.logging.get_logger(record.name)
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                logger.error(text)
            elif record.levelno >= logging.WARNING:
                logger.warning(text)
            elif record.levelno >= logging.INFO:
                logger.info(text)
            else:
                logger.debug(text)
        except Exception:  # logging must never raise
            self.handleError(record)


def route_library_logging() -> None:
    """Send the library rooms' records to the ROS logger instead of Python's root logger."""
    root = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(h, RosLogHandler) for h in root.handlers):
        root.addHandler(RosLogHandler())
    root.setLevel(logging.INFO)
    root.propagate = False
