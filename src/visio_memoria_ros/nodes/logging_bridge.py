"""The library rooms' ``logging`` records, forwarded to the ROS logger (console and rosout).

The library loggers (``visio_memoria_ros.*``) log at the node's ROS log level:
``--ros-args --log-level debug`` (launch: ``log_level:=debug``), ``--log-level
visio_memoria_ros:=debug`` or the node's own logger (``--log-level camera_node:=debug``) make
their debug lines appear; at the default level (info) they do not.
"""

from __future__ import annotations

import logging

import rclpy
from rclpy.impl.rcutils_logger import RcutilsLogger

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


def _routed(lib: logging.Logger) -> bool:
    return any(isinstance(h, RosLogHandler) for h in lib.handlers)


def route_library_logging() -> None:
    """Send the library rooms' records to the ROS logger, at its level for them.

    Call after ``rclpy.init`` (the ``--log-level`` arguments are read there). The level is
    the ROS effective level of ``visio_memoria_ros``: the default level unless one is given
    for that name. ``follow_ros_log_level`` lowers it to a node's own level.
    """
    lib = logging.getLogger(LIBRARY_LOGGER)
    if not _routed(lib):
        lib.addHandler(RosLogHandler())
    lib.propagate = False
    lib.setLevel(int(rclpy.logging.get_logger_effective_level(LIBRARY_LOGGER)))


def follow_ros_log_level(ros_logger: RcutilsLogger) -> None:
    """Let the library log down to ``ros_logger``'s effective level (never less than now).

    Only once ``route_library_logging`` sent the library's records to ROS (a node process);
    elsewhere (tests, another application) Python's logging configuration is left alone. In
    one process with several nodes the most verbose node's level applies.
    """
    lib = logging.getLogger(LIBRARY_LOGGER)
    if not _routed(lib):
        return
    level = int(ros_logger.get_effective_level())
    if level < lib.level:
        lib.setLevel(level)
        # The forwarded records go through the ROS loggers of their own names (children of
        # visio_memoria_ros), which must pass them too.
        rclpy.logging.set_logger_level(LIBRARY_LOGGER, level)
