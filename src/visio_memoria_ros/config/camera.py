"""camera_node parameters."""

from .spec import ParamSpec

PARAMS = [
    ParamSpec(
        "source",
        "0",
        "What to read: a device index ('0'), a device path (/dev/video0), a video file, a folder "
        "of images, a glob ('frames/*.jpg') or a comma-separated list of image files.",
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
        "loop", True, "Restart a video file or image list at its end; false: exit 0 at the end."
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
        "Stop (exit 0) after publishing this many frames; 0 = no limit.",
        min=0,
        max=2**31 - 1,
    ),
]
