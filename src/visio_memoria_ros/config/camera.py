"""camera_node parameters."""

from .spec import ParamSpec

PARAMS = [
    ParamSpec(
        "source",
        "0",
        "What to read: a device index ('0'), a device path (/dev/video0), a network camera URL "
        "(rtsp://..., http://...), a video file, a folder of images, a glob ('frames/*.jpg') or "
        "a comma-separated list of image files.",
        allow_empty=False,
        read_only=True,
    ),
    ParamSpec(
        "rate",
        10.0,
        "Publish rate [Hz] for files and folders (devices run at their own rate "
        "but are polled at this rate).",
        min=0.1,
        max=240.0,
    ),
    ParamSpec(
        "loop",
        True,
        "Restart a video file or image list at its end; false: the source ends there (see "
        "on_source_end).",
        read_only=True,
    ),
    ParamSpec(
        "on_source_end",
        "keep",
        "What camera_node does when a file source ends (loop false) or max_frames is reached: "
        "'keep' stays alive and idle, reporting 'source ended after N frames' on /diagnostics; "
        "'shutdown' exits with code 0, and bringup.launch.py then shuts the whole launch down. "
        "bringup.launch.py sets it from its on_source_end argument.",
        choices=("keep", "shutdown"),
        read_only=True,
    ),
    ParamSpec("frame_id", "camera", "frame_id written into every image header.", allow_empty=False),
    ParamSpec(
        "width",
        0,
        "Requested device width [px]; 0 = the device default.",
        min=0,
        max=8192,
        read_only=True,
    ),
    ParamSpec(
        "height",
        0,
        "Requested device height [px]; 0 = the device default.",
        min=0,
        max=8192,
        read_only=True,
    ),
    ParamSpec(
        "max_frames",
        0,
        "The source counts as ended (see on_source_end) after this many published frames; "
        "0 = no limit.",
        min=0,
        max=2**31 - 1,
    ),
    ParamSpec(
        "reconnect_attempts",
        5,
        "How many times a source that cannot be opened, or a device or stream that stops "
        "delivering frames (unplugged), is reopened before camera_node gives up and exits 1 "
        "(ERROR on /diagnostics; WARN while retrying). 0 = give up at the first failure. "
        "A source that delivers a frame again starts the count afresh.",
        min=0,
        max=1000,
        read_only=True,
    ),
    ParamSpec(
        "reconnect_delay",
        1.0,
        "Wait before the first reopening [s]; each further retry waits twice as long, up to "
        "reconnect_max_delay (defaults: 1, 2, 4, 8, 16 s, giving up about 31 s after the "
        "failure).",
        min=0.05,
        max=600.0,
        read_only=True,
    ),
    ParamSpec(
        "reconnect_max_delay",
        30.0,
        "Longest wait between two reopening attempts [s]; at least reconnect_delay.",
        min=0.05,
        max=3600.0,
        read_only=True,
    ),
]


def check(params: dict) -> str | None:
    """Why the camera parameters do not fit together, or None."""
    if params["reconnect_max_delay"] < params["reconnect_delay"]:
        return (
            f"reconnect_max_delay={params['reconnect_max_delay']} is below "
            f"reconnect_delay={params['reconnect_delay']}"
        )
    return None
