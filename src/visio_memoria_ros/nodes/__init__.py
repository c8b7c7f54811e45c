"""Thin ROS 2 adapters, one module per node. The only room that imports rclpy."""
