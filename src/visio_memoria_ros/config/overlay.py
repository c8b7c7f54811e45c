"""overlay_node parameters."""

from .spec import ParamSpec

PARAMS = [
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
        "Also publish one text marker per identity (visualization_msgs/MarkerArray, positions "
        "in image pixels) for rviz.",
        read_only=True,
    ),
]
