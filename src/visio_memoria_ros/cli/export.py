"""``export``: a model as ONNX (and a TensorRT engine) for GPU robots.

``export --json`` -> ``{"schema": "visio-memoria.export/1", "exported": [{"kind", "onnx":
str, "sidecar": str|null, "engine": str|null, "check": {"max_abs_diff": float, "min_cosine":
float} (the ONNX output against torch's under onnxruntime on the CPU; {} for YOLO)}]}``.
Models come from the configured parameters: the dlib ResNet and DINOv3 from embedding_node's,
the YOLO face/person models from detector_node's ``face_model_path``/``person_model_path``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import CliError, add_command, print_json
from .context import node_params


def cmd_export(args: argparse.Namespace) -> int:
    """Write a model as ONNX (and a TensorRT engine) for GPU robots."""
    from .. import export

    out = Path(args.out)
    try:
        if args.what == "face-embedder":
            params = node_params(args, "embedding_node")
            path = str(params.get("dlib_recognition_model_path") or "") or None
            result = export.export_face_embedder(out, recognition_model_path=path)
        elif args.what == "dinov3":
            from ..embedding import build_dinov3

            params = node_params(args, "embedding_node")
            params["precision"] = "fp32"
            result = export.export_dinov3(build_dinov3(**params), out)
        else:
            params = node_params(args, "detector_node")
            key, task = (("face_model_path", "pose") if args.what == "yolo-face"
                         else ("person_model_path", "detect"))
            result = export.export_yolo(params[key], out, task=task, imgsz=args.imgsz,
                                        half=args.precision == "fp16", tensorrt=args.tensorrt,
                                        device=params.get("device", "cpu"))
        if args.tensorrt and result.engine is None:
            result.engine = export.build_tensorrt_engine(result.onnx,
                                                         fp16=args.precision == "fp16")
    except ImportError as exc:
        raise CliError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise CliError(f"{exc} (see models/README.md)") from exc
    if args.json:
        print_json({"schema": "visio-memoria.export/1", "exported": [result.to_dict()]})
    else:
        check = result.check
        compared = (f"; onnxruntime vs torch: max |diff| {check['max_abs_diff']:.2e}, min "
                    f"cosine {check['min_cosine']:.7f}" if check else "")
        print(f"wrote {result.onnx}{compared}")
        if result.engine:
            print(f"wrote {result.engine}")
    return 0


def register(sub: Any) -> None:
    """Add ``export`` to the command parser ``sub``."""
    p = add_command(sub, "export", cmd_export, "write a model as ONNX (and a TensorRT engine where "
                    "tensorrt is installed) for a GPU: face-embedder (dlib's ResNet; run it with "
                    "face_embedder onnx), dinov3, yolo-face, yolo-person")
    p.add_argument("what", choices=("face-embedder", "dinov3", "yolo-face", "yolo-person"))
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--tensorrt", action="store_true",
                   help="also build a TensorRT engine (needs the tensorrt package and a GPU)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="engine precision (TensorRT, YOLO half); the ONNX file is fp32")
    p.add_argument("--imgsz", type=int, default=640, help="YOLO input size (default 640)")
