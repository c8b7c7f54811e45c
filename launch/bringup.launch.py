"""Start the whole visio_memoria graph: camera, detector, embedder, identity, memory, activity,
overlay, each as its own process, configured by one parameters file.

    ros2 launch visio_memoria bringup.launch.py
    ros2 launch visio_memoria bringup.launch.py image_topic:=/camera/color/image_raw \
        start_camera:=false namespace:=robot1 params_file:=/path/to/my.yaml

Parameters in a namespace: the sections of ``config/visio_memoria.yaml`` are keyed
``/**/<node>:`` (rclpy matches ``/**`` to any namespace), so the same file serves
``namespace:=robot1`` and the root, and it is handed to each node unchanged. nav2's
``RewrittenYaml(root_key=namespace)`` would work as well, but it rewrites the file at launch
time into a temporary copy: then ``ros2 run --params-file``, the ``visio-memoria --config`` CLI
and the labelling page would read a different file from the nodes, and per-robot sections
(``/robot1/memory_node:``, after the shipped ones) could not live in one file.

``single_process:=true`` runs the same nodes (same names, namespace, remappings and parameters
file) in one process instead, the ``visio_memoria_node`` executable with a multi-threaded
executor: torch and the models' libraries load once.

A camera driver started outside this file should get the same Fast DDS profile:
``export FASTDDS_DEFAULT_PROFILES_FILE=<visio_memoria share>/config/fastdds.xml``
(``FASTRTPS_DEFAULT_PROFILES_FILE`` on Humble).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    Shutdown,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "visio_memoria"


def generate_launch_description():
    """Declare the arguments and the seven nodes."""
    share = get_package_share_directory(PACKAGE)
    # Fast DDS 2 (Humble) reads the old variable name; Fast DDS 3 (Jazzy, Kilted) the new one.
    dds_profile_var = (
        "FASTRTPS_DEFAULT_PROFILES_FILE"
        if os.environ.get("ROS_DISTRO") == "humble"
        else "FASTDDS_DEFAULT_PROFILES_FILE"
    )
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    image_topic = LaunchConfiguration("image_topic")
    log_level = LaunchConfiguration("log_level")

    arguments = [
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of every node and topic."
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "visio_memoria.yaml"),
            description="Parameters of every node (see config/visio_memoria.yaml).",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="Use /clock (bag replay, simulation).",
        ),
        DeclareLaunchArgument(
            "image_topic",
            default_value="image_raw",
            description="Camera image topic the detector and overlay read.",
        ),
        DeclareLaunchArgument(
            "start_camera",
            default_value="true",
            description="Start camera_node (false when a driver publishes image_topic).",
        ),
        DeclareLaunchArgument(
            "on_source_end",
            default_value="keep",
            choices=["keep", "shutdown"],
            description="When camera_node's file or folder source ends (loop false, or "
            "max_frames): keep = the graph keeps running, the camera idle and reporting the end "
            "on /diagnostics; shutdown = the whole launch shuts down cleanly.",
        ),
        DeclareLaunchArgument(
            "start_overlay",
            default_value="true",
            description="Start overlay_node (annotated image for rviz).",
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", description="Log level of every node."
        ),
        DeclareLaunchArgument(
            "dds_profile",
            default_value=EnvironmentVariable(
                dds_profile_var,
                default_value=os.path.join(share, "config", "fastdds.xml"),
            ),
            description="Fast DDS XML profile of every node: the shipped one enlarges the "
            "shared-memory segment so camera images are not lost between processes.",
        ),
        DeclareLaunchArgument(
            "single_process",
            default_value="false",
            choices=["true", "false"],
            description="Run the nodes in one process (visio_memoria_node, a multi-threaded "
            "executor; torch loaded once) instead of one process per node. Names, topics, "
            "services and parameters are the same.",
        ),
    ]
    dds_environment = [SetEnvironmentVariable(dds_profile_var, LaunchConfiguration("dds_profile"))]

    def own_process(flag=None):
        """A node gets its own process unless single_process (and only when ``flag`` is true)."""
        expression = ["'", LaunchConfiguration("single_process"), "'.lower() != 'true'"]
        if flag:
            expression += [" and '", LaunchConfiguration(flag), "'.lower() == 'true'"]
        return IfCondition(PythonExpression(expression))

    def node(executable, remappings=(), condition=None, params=None):
        return Node(
            package=PACKAGE,
            executable=executable,
            name=executable,
            namespace=namespace,
            parameters=[params_file, {"use_sim_time": use_sim_time, **(params or {})}],
            remappings=list(remappings),
            arguments=["--ros-args", "--log-level", log_level],
            output="screen",
            respawn=True,
            respawn_delay=2.0,
            condition=condition or own_process(),
        )

    camera = node(
        "camera_node",
        [("image_raw", image_topic)],
        condition=own_process("start_camera"),
        params={"on_source_end": LaunchConfiguration("on_source_end")},
    )
    # on_source_end:=shutdown: camera_node exits 0 when its source ends; end the launch then
    # (respawn waits respawn_delay and is cancelled by the shutdown). Exit 1 (a camera that
    # could not be reopened) is left to respawn.
    source_end = RegisterEventHandler(
        OnProcessExit(target_action=camera, on_exit=_shutdown_when_source_ended)
    )
    nodes = [
        camera,
        node("detector_node", [("image_raw", image_topic)]),
        node("embedding_node"),
        node("identity_node"),
        node("memory_node"),
        node("activity_node"),
        node(
            "overlay_node",
            [("image_raw", image_topic)],
            condition=own_process("start_overlay"),
        ),
    ]
    one_process = OpaqueFunction(function=_one_process)
    return LaunchDescription(arguments + dds_environment + nodes + [source_end, one_process])


# --- single_process:=true ----------------------------------------------------------------------
def _one_process(context):
    """The chosen nodes in one visio_memoria_node process (when single_process is true)."""
    config = context.launch_configurations
    if config.get("single_process", "false").lower() != "true":
        return []
    names = ["camera_node"] if config.get("start_camera", "true").lower() == "true" else []
    names += ["detector_node", "embedding_node", "identity_node", "memory_node", "activity_node"]
    if config.get("start_overlay", "true").lower() == "true":
        names.append("overlay_node")
    process = Node(
        package=PACKAGE,
        executable="visio_memoria_node",
        namespace=config.get("namespace", ""),
        parameters=[
            config["params_file"],
            {"use_sim_time": config.get("use_sim_time", "false").lower() == "true",
             "on_source_end": config.get("on_source_end", "keep")},
        ],
        remappings=[("image_raw", config.get("image_topic", "image_raw"))],
        arguments=["--nodes", ",".join(names), "--ros-args", "--log-level",
                   config.get("log_level", "info")],
        output="screen",
        respawn=True,
        respawn_delay=2.0,
    )
    ended = RegisterEventHandler(
        OnProcessExit(target_action=process, on_exit=_shutdown_when_source_ended)
    )
    return [process, ended]


def _shutdown_when_source_ended(event, context):
    """Shut the launch down when camera_node ended cleanly and on_source_end is shutdown."""
    if event.returncode == 0 and context.launch_configurations.get("on_source_end") == "shutdown":
        return [Shutdown(reason="camera_node's source ended (on_source_end:=shutdown)")]
    return None
