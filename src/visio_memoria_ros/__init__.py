"""visio_memoria: see people, remember them and greet them by name.

The rooms below are importable without ROS; only ``nodes`` imports rclpy.
"""

__version__ = "0.1.0"
