"""detector_node parameters: the perception pipeline's knobs (``perception.PerceiverConfig``)
and how camera images arrive (``image_input``).

Every name in ``PERCEIVER_PARAMS`` is a ``PerceiverConfig`` field with the same default; a test
keeps them equal. ``read_only`` parameters need a model reload (or tracker rebuild) and are fixed
after start.
"""

from __future__ import annotations

from . import image_input
from .shared import TORCH_THREADS
from .spec import MODEL_LOOKUP, ParamSpec

_FACE_BACKENDS = ("mtcnn", "yolo", "haar")
_PERSON_BACKENDS = ("yolo", "hog", "face_extrapolated", "none")

PERCEIVER_PARAMS: list[ParamSpec] = [
    # --- faces -----------------------------------------------------------------------------
    ParamSpec(
        "face_backend", "mtcnn",
        "Face detector: 'mtcnn' (facenet-pytorch, weights ship in the package, offline "
        "default), 'yolo' (YOLOv8-face pose model from face_model_path; .pt, .onnx or TensorRT "
        ".engine), 'haar' (OpenCV cascade: fastest, frontal only, landmarks estimated from the "
        "box so alignment is approximate).",
        choices=_FACE_BACKENDS, read_only=True,
    ),
    ParamSpec(
        "face_model_path", "yolov8n-face.pt",
        "Local YOLOv8-face weights for face_backend 'yolo' (5 keypoints). " + MODEL_LOOKUP
        + " Never downloaded: a missing file fails at start naming every place searched.",
        read_only=True,
    ),
    ParamSpec(
        "haar_cascade_path", "",
        "Haar cascade XML for face_backend 'haar'; empty = OpenCV's "
        "haarcascade_frontalface_default.xml.",
        read_only=True,
    ),
    ParamSpec(
        "device", "cpu",
        "Torch/ultralytics device for the detectors: 'cpu', 'cuda', 'cuda:0', ... "
        "(a TensorRT .engine needs a CUDA device).",
        allow_empty=False, read_only=True,
    ),
    ParamSpec(
        "precision", "fp32",
        "Numeric precision of the YOLO backends: fp32, or fp16 on a CUDA device (refused on "
        "the CPU, except with device auto on a machine without a GPU: fp32 with a warning); "
        "bf16 is refused (ultralytics has no bf16 inference). MTCNN and Haar run fp32.",
        choices=("fp32", "fp16", "bf16"), read_only=True,
    ),
    ParamSpec(
        "face_score_threshold", 0.9,
        "Minimum face detection score [0-1]. 0.9 suits MTCNN (its false positives score "
        "0.7-0.8); use about 0.5 for YOLOv8-face. Unused by 'haar'.",
        min=0.0, max=1.0, read_only=True,
    ),
    ParamSpec(
        "min_face_size", 20,
        "Smallest face to detect [px, input image]; larger values are faster (MTCNN builds "
        "fewer pyramid levels).",
        min=1, max=4096, read_only=True,
    ),
    ParamSpec(
        "detect_max_side", 0,
        "Downscale the image for face detection so its longer side is at most this [px]; "
        "boxes are mapped back to full resolution. 0 = no downscale (YOLO: imgsz 640). The "
        "effective minimum face size becomes max(min_face_size, 12 / scale).",
        min=0, max=8192, read_only=True,
    ),
    ParamSpec(
        "detect_stride", 1,
        "Run the detectors and trackers on every N-th frame; frames in between reuse the last "
        "detection (same ids and boxes, no face crops: nothing is embedded twice). "
        "1 = detect on every frame.",
        min=1, max=30, read_only=True,
    ),
    ParamSpec(
        "full_detect_interval", 4,
        "On detected frames, run the face detector on the whole frame (MTCNN: the full "
        "pyramid down to min_face_size) every N-th time only; in between, the previous "
        "frame's faces are found again near their boxes (MTCNN: its last stage on those "
        "boxes, all in one batch; other backends: the detector on crops of region_scale x "
        "each face), several times cheaper. New faces are found by the next full pass (or "
        "at once on motion, motion_threshold). 1 = a full pass on every detected frame.",
        min=1, max=100, read_only=True,
    ),
    ParamSpec(
        "motion_threshold", 0.25,
        "Start a full-frame pass before full_detect_interval when this fraction of an 80x60 "
        "grey thumbnail changed (> 20 grey levels) since the last full pass, outside the "
        "known faces' regions: somebody may have walked in. 0 = never. 0.25 does not fire "
        "on every frame of a hand-held crowd clip (7-24 % change over 4 frames).",
        min=0.0, max=1.0, read_only=True,
    ),
    ParamSpec(
        "region_scale", 2.5,
        "Side of a known face's search region for backends without MTCNN's box refinement "
        "(yolo, haar), as a multiple of the face's size.",
        min=1.2, max=8.0, read_only=True,
    ),
    # --- persons ---------------------------------------------------------------------------
    ParamSpec(
        "person_backend", "face_extrapolated",
        "Body detector: 'yolo' (YOLOv8 from person_model_path, COCO class 0), 'hog' (OpenCV "
        "HOG people detector: upright, >= 128 px tall at person_max_side), 'face_extrapolated' "
        "(a body box derived from each face box; free) or 'none'.",
        choices=_PERSON_BACKENDS, read_only=True,
    ),
    ParamSpec(
        "person_model_path", "yolov8n.pt",
        "Local YOLOv8 detection weights for person_backend 'yolo'. " + MODEL_LOOKUP
        + " Never downloaded.",
        read_only=True,
    ),
    ParamSpec(
        "person_score_threshold", 0.5,
        "Minimum person score [0-1] (YOLO confidence; HOG: sigmoid of the SVM margin).",
        min=0.0, max=1.0, read_only=True,
    ),
    ParamSpec(
        "person_max_side", 640,
        "Longer side [px] of the image the person detector sees (YOLO imgsz, HOG downscale).",
        min=64, max=4096, read_only=True,
    ),
    ParamSpec(
        "body_width_faces", 3.0,
        "face_extrapolated: body width in face widths, centred on the face.",
        min=1.0, max=10.0, read_only=True,
    ),
    ParamSpec(
        "body_height_faces", 7.0,
        "face_extrapolated: body height in face heights, from 0.3 face heights above the face "
        "(clipped to the image).",
        min=1.0, max=15.0, read_only=True,
    ),
    # --- tracking --------------------------------------------------------------------------
    ParamSpec(
        "track_buffer", 30,
        "Detection frames a confirmed track survives without a match (then its id is gone).",
        min=0, max=1000, read_only=True,
    ),
    ParamSpec(
        "track_activation_threshold", 0.6,
        "Minimum detection score that may start a new track.",
        min=0.0, max=1.0, read_only=True,
    ),
    ParamSpec(
        "track_high_threshold", 0.5,
        "ByteTrack split: detections at or above are matched first, below only continue "
        "existing tracks.",
        min=0.0, max=1.0, read_only=True,
    ),
    ParamSpec(
        "track_match_iou", 0.2,
        "Minimum IoU between a track's predicted box and a detection to match them.",
        min=0.0, max=1.0, read_only=True,
    ),
    ParamSpec(
        "track_min_frames", 2,
        "Consecutive matched detection frames before a new track gets an id (until then "
        "track_id = -1).",
        min=1, max=30, read_only=True,
    ),
    ParamSpec(
        "face_person_upper_fraction", 0.5,
        "A face links to a person when its centre lies in this top fraction of the body box.",
        min=0.05, max=1.0,
    ),
    # --- crops and quality -----------------------------------------------------------------
    ParamSpec(
        "face_crops", True,
        "Attach the canonical 192x192 aligned face crop (core.face_crop) to each face.",
    ),
    ParamSpec("scene_crops", True, "Attach a scene crop (body plus surroundings) to each person."),
    ParamSpec(
        "scene_context", 0.25,
        "Scene crop margin on every side, as a fraction of the body box size (0.25: a crop "
        "1.5 x the body's width and height, clipped to the image).",
        min=0.0, max=3.0,
    ),
    ParamSpec(
        "scene_crop_max_side", 384,
        "Scene crops are shrunk so their longer side is at most this [px]; 0 = full resolution.",
        min=0, max=4096,
    ),
    ParamSpec(
        "quality_size_ref", 112.0,
        "Face quality: a face this many px on its shorter side gets the full size score.",
        min=1.0, max=1024.0,
    ),
    ParamSpec(
        "quality_sharpness_ref", 100.0,
        "Face quality: Laplacian variance (face at 112x112) giving sharpness score 0.5.",
        min=1.0, max=10000.0,
    ),
    # --- input and runtime -----------------------------------------------------------------
    ParamSpec(
        "max_input_side", 4096,
        "Inputs larger than this [px, longer side] are downscaled before anything else; "
        "outputs stay in input-image pixels.",
        min=64, max=16384, read_only=True,
    ),
    TORCH_THREADS,
    ParamSpec(
        "warmup", True,
        "Run the face detector once on a blank frame at start, before subscribing, so the "
        "first camera frame does not pay the first call's set-up.",
        read_only=True,
    ),
]

PARAMS: list[ParamSpec] = PERCEIVER_PARAMS + image_input.PARAMS
