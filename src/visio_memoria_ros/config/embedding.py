"""embedding_node parameters."""

from __future__ import annotations

from .shared import TORCH_THREADS, UNTRACKED_HANDOFF
from .spec import MODEL_LOOKUP, ParamSpec

FACE_EMBEDDER = ParamSpec(
    "face_embedder",
    "dlib",
    "Identity embedder for aligned face crops: dlib (dlib's ResNet 128-d, ships offline; run "
    "in PyTorch, batched, on `device`, falling back to dlib's C++ when torch cannot run it), "
    "dlib_torch / dlib_cpp (force one engine; all three give the same vectors and id), "
    "dinov3 (class token, weak for identity) or onnx (an ArcFace-style model you supply). "
    "Changing the model means the gallery must be re-embedded from stored crops.",
    choices=("dlib", "dlib_torch", "dlib_cpp", "dinov3", "onnx"),
    read_only=True,
)
"""Which face model embedding_node runs: a *kind*. The faces it publishes carry the model's
*id* (``Face.embedder``: ``dlib_resnet_v1_128`` for dlib, dlib_torch and dlib_cpp alike), and
ids are what galleries, identity_node's ``embedder`` and every diagnostics key ending in
``embedder`` name."""

PARAMS: list[ParamSpec] = [
    # --- which models -----------------------------------------------------------------------
    FACE_EMBEDDER,
    ParamSpec(
        "scene_embedder",
        "auto",
        "DINOv3 scene/person features for the activity head: dinov3 (fail when the model is "
        "missing), auto (use DINOv3 when its weights are found, else run without scene "
        "embeddings, activity from track dynamics only, with a warning naming the places "
        "searched in the log and on /diagnostics) or none.",
        choices=("auto", "dinov3", "none"),
        read_only=True,
    ),
    ParamSpec(
        "device",
        "cpu",
        "Torch device for DINOv3 and the dlib ResNet: auto, cpu, cuda or cuda:N (dlib_cpp and "
        "ONNX run on the CPU).",
        allow_empty=False,
        read_only=True,
    ),
    ParamSpec(
        "precision",
        "fp32",
        "Numeric precision of DINOv3 and the dlib ResNet (torch): fp32; fp16 on a CUDA device "
        "(refused on the CPU, except with device auto on a machine without a GPU: fp32 with a "
        "warning); bf16 on CUDA or the CPU (fast on CPUs with bf16 instructions, slow "
        "elsewhere). dlib vectors stay within cosine 0.9999 of fp32, so the embedder id does "
        "not change.",
        choices=("fp32", "fp16", "bf16"),
        read_only=True,
    ),
    TORCH_THREADS,
    # --- dlib -------------------------------------------------------------------------------
    ParamSpec(
        "dlib_recognition_model_path",
        "",
        "dlib_face_recognition_resnet_model_v1.dat; empty = the copy inside "
        "face_recognition_models. " + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "dlib_shape_predictor_path",
        "",
        "shape_predictor_5_face_landmarks.dat; empty = the copy inside face_recognition_models. "
        + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "dlib_num_jitters",
        0,
        "Random jitters averaged per dlib descriptor (each one costs a full forward pass).",
        min=0,
        max=20,
        read_only=True,
    ),
    # --- ONNX -------------------------------------------------------------------------------
    ParamSpec(
        "onnx_model_path",
        "",
        "ONNX face model, required when face_embedder=onnx: an ArcFace-style model (NCHW "
        "input, one embedding per face) or one written by `visio-memoria export "
        "face-embedder` (its .json sidecar says it takes dlib's face chips; same vectors and "
        "id as dlib). " + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "onnx_runtime",
        "auto",
        "What runs the ONNX face model: onnxruntime (TensorRT / CUDA execution providers when "
        "installed and device is cuda, the CPU otherwise), opencv (OpenCV DNN, CPU) or auto "
        "(onnxruntime when installed, else OpenCV).",
        choices=("auto", "onnxruntime", "opencv"),
        read_only=True,
    ),
    ParamSpec(
        "onnx_input_size",
        112,
        "Square input side of the ONNX model [px]; the ArcFace inner box is resized to it.",
        min=16,
        max=1024,
        read_only=True,
    ),
    ParamSpec(
        "onnx_mean",
        127.5,
        "Subtracted from 0..255 pixel values before the ONNX model.",
        min=0.0,
        max=255.0,
        read_only=True,
    ),
    ParamSpec(
        "onnx_std",
        127.5,
        "Pixel values are divided by this after the mean is subtracted.",
        min=1e-6,
        max=1000.0,
        read_only=True,
    ),
    ParamSpec(
        "onnx_bgr",
        False,
        "Feed the ONNX model BGR instead of RGB.",
        read_only=True,
    ),
    ParamSpec(
        "onnx_model_id",
        "",
        "Embedder id stored with each vector; empty = onnx_<file stem>_<dim>. Give each "
        "different model a different id.",
        read_only=True,
    ),
    # --- DINOv3 -----------------------------------------------------------------------------
    ParamSpec(
        "dinov3_source",
        "pretrained_dir",
        "How to load DINOv3: pretrained_dir (transformers DINOv3ViTModel directory) or hub "
        "(local clone of facebookresearch/dinov3 + a .pth weights file).",
        choices=("pretrained_dir", "hub"),
        read_only=True,
    ),
    ParamSpec(
        "dinov3_model_dir",
        "dinov3-vitb16-pretrain-lvd1689m",
        "transformers directory (config.json + model.safetensors) of DINOv3 ViT-B/16. "
        + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "dinov3_hub_repo_dir",
        "dinov3",
        "Local clone of facebookresearch/dinov3 (has hubconf.py); used when dinov3_source=hub. "
        + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "dinov3_hub_weights",
        "dinov3_vitb16_pretrain_lvd1689m.pth",
        "DINOv3 weights file for the hub loader. " + MODEL_LOOKUP,
        read_only=True,
    ),
    ParamSpec(
        "dinov3_hub_arch",
        "dinov3_vitb16",
        "hubconf entry point for the hub loader (dinov3_vits16, dinov3_vitb16, dinov3_vitl16...).",
        allow_empty=False,
        read_only=True,
    ),
    ParamSpec(
        "face_resolution",
        112,
        "DINOv3 input side for face crops [px], a multiple of the patch size (16). Part of the "
        "embedder id: vectors made at different resolutions are not comparable.",
        min=16,
        max=512,
        read_only=True,
    ),
    ParamSpec(
        "scene_resolution",
        224,
        "DINOv3 input side for person/scene crops [px], a multiple of the patch size (16).",
        min=16,
        max=1024,
        read_only=True,
    ),
    ParamSpec(
        "max_batch",
        16,
        "Most crops in one DINOv3 or dlib ResNet (torch) forward pass; a frame with more crops "
        "runs several passes.",
        min=1,
        max=256,
    ),
    ParamSpec(
        "max_faces_per_frame",
        16,
        "Most face crops embedded per frame (best quality first); the rest wait for later frames.",
        min=1,
        max=256,
    ),
    ParamSpec(
        "max_persons_per_frame",
        8,
        "Most person crops given scene features per frame (largest first).",
        min=0,
        max=256,
    ),
    # --- when to embed a face track ----------------------------------------------------------
    ParamSpec(
        "first_embeddings",
        2,
        "A new face track is embedded this many times at first_embed_interval_s, whatever the "
        "crop quality, so identity_node gets its min_votes quickly (keep it >= min_votes).",
        min=1,
        max=100,
    ),
    ParamSpec(
        "first_embed_interval_s",
        0.2,
        "Least time between the first_embeddings of a new face track [s].",
        min=0.0,
        max=60.0,
    ),
    ParamSpec(
        "min_embed_interval_s",
        0.5,
        "Least time between two embeddings of one face track [s].",
        min=0.0,
        max=60.0,
    ),
    ParamSpec(
        "max_embeddings_per_track",
        5,
        "Most embeddings made for one face track from new, improved or refreshed crops; past "
        "it only refresh_after_budget_s applies.",
        min=1,
        max=1000,
    ),
    ParamSpec(
        "quality_rel_margin",
        0.10,
        "A crop counts as improved when its quality exceeds the best embedded one by "
        "max(quality_abs_margin, quality_rel_margin x best).",
        min=0.0,
        max=10.0,
    ),
    ParamSpec(
        "quality_abs_margin",
        0.05,
        "Absolute part of the improvement margin (quality units, 0..1 scale).",
        min=0.0,
        max=1.0,
    ),
    ParamSpec(
        "refresh_interval_s",
        2.0,
        "Re-embed a track after this long even without a better crop, so identity can vote "
        "over several embeddings [s]; 0 = only new or improved crops.",
        min=0.0,
        max=600.0,
    ),
    ParamSpec(
        "refresh_after_budget_s",
        10.0,
        "Once a track used max_embeddings_per_track, re-embed it at this slower period so its "
        "identity follows gallery changes (someone named while in view is greeted) [s]; "
        "0 = never.",
        min=0.0,
        max=3600.0,
    ),
    UNTRACKED_HANDOFF,
    ParamSpec(
        "forget_track_after_s",
        10.0,
        "Forget the embedding state of a face track not seen for this long [s].",
        min=0.1,
        max=3600.0,
    ),
    ParamSpec(
        "drop_crops_after_embedding",
        True,
        "Leave out of the outgoing message the face crops not embedded in this frame and the "
        "scene crops once embedded (less bandwidth). A face embedded in this frame always keeps "
        "its crop: the memory stores it for labelling and later re-embedding.",
    ),
]
