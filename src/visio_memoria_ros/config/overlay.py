"""overlay_node parameters."""

from . import image_input
from .spec import ParamSpec

PARAMS = [
    ParamSpec(
        "pair_with",
        "results",
        "results: draw an image when the identities of that very image arrive (boxes exactly on "
        "the faces, at the pipeline's rate); images: draw every image on arrival with the "
        "closest results within max_age (camera rate, boxes trail by the pipeline's latency).",
        choices=("results", "images"),
    ),
    ParamSpec(
        "max_age",
        1.0,
        "Identities and activities are drawn on an image only when their header stamp is within "
        "this many seconds [s] of the image's stamp; 0 = only exact stamp matches.",
        min=0.0,
        max=10.0,
    ),
    ParamSpec("show_persons", True, "Draw person (body) boxes, thinner than face boxes."),
    ParamSpec("show_activity", True, "Write each person's activity and its confidence."),
    ParamSpec("show_similarity", True, "Write the similarity after a known person's name."),
    ParamSpec("show_track_ids", True, "Append the face track id to each label (' t12')."),
    ParamSpec("font_scale", 0.5, "OpenCV font scale of the labels.", min=0.2, max=3.0),
    ParamSpec("face_thickness", 2, "Line width [px] of face boxes.", min=1, max=10),
    ParamSpec("person_thickness", 1, "Line width [px] of person boxes.", min=1, max=10),
    ParamSpec(
        "publish_markers",
        False,
        "Also publish one text marker per identity on overlay/markers (visualization_msgs/"
        "MarkerArray) for rviz. Without depth the markers lie on the image plane: in the image's "
        "frame_id, x = u * marker_pixel_size, y = v * marker_pixel_size, z = 0 (u, v = pixel "
        "column and row of the face box's top-centre; optical-frame axes, x right, y down).",
        read_only=True,
    ),
    ParamSpec(
        "marker_pixel_size",
        0.001,
        "Size of one image pixel [m] on the marker plane (see publish_markers); also scales the "
        "marker text height.",
        min=1e-6,
        max=1.0,
    ),
    ParamSpec(
        "output_encoding",
        "rgb8",
        "Encoding of overlay/image.",
        choices=("rgb8", "bgr8"),
    ),
    ParamSpec(
        "overlay_reliability",
        "reliable",
        "QoS reliability of overlay/image (keep last 5, volatile): 'reliable' reaches rviz2's "
        "Image display, which subscribes reliable by default, and best-effort subscribers too; "
        "'best_effort' reaches only subscribers set to best effort (in rviz: Reliability "
        "Policy: Best Effort).",
        choices=("reliable", "best_effort"),
        read_only=True,
    ),
    ParamSpec(
        "use_perception",
        True,
        "Subscribe to perception for person boxes (drawn when show_persons); false saves the "
        "bandwidth of the crops Perception messages carry.",
        read_only=True,
    ),
    *image_input.PARAMS,
]
