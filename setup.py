"""pip install of the visio_memoria Python package and the ``visio-memoria`` CLI.

The ROS interfaces (``visio_memoria.msg``/``.srv``) and node executables are built by colcon
from CMakeLists.txt; this file serves plain-Python use (CLI, benchmarks, the labelling page).
"""

from setuptools import find_packages, setup

setup(
    name="visio-memoria",
    version="0.1.0",
    description="See people, remember them and greet them by name (ROS 2 perception).",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    python_requires=">=3.10",
    # Every third-party module the code imports (test/test_packaging.py checks it). What the
    # default pipeline needs beyond these comes as extras: torch, "mtcnn" (facenet-pytorch,
    # install it with --no-deps: its metadata pins an old torch), "dlib".
    install_requires=[
        "numpy",
        "opencv-python-headless<5",
        "pyyaml",
        "scipy",
        "scikit-learn",
        "faiss-cpu",
        "supervision",
        "trackers",
        "tqdm",
    ],
    extras_require={
        "torch": ["torch", "torchvision"],
        "mtcnn": ["facenet-pytorch", "torch", "torchvision"],
        # face_recognition_models reads its model files through pkg_resources
        "dlib": ["dlib-bin", "face_recognition_models", "setuptools<80"],
        "dinov3": ["torch", "transformers"],
        "ui": ["streamlit", "altair"],
        "crypto": ["cryptography"],
        # ONNX face embedders on onnxruntime (onnxruntime-gpu on a GPU) and `export`'s check
        "onnx": ["onnxruntime"],
        # the fleet memory on a PostgreSQL server with pgvector
        "postgres": ["psycopg[binary]", "pgvector"],
        # optional, AGPL-3.0: only the YOLO face/person backends need it
        "yolo": ["ultralytics"],
        "test": ["pytest", "pytest-timeout", "hypothesis", "ruff", "playwright", "onnx",
                 "pgserver"],
    },
    entry_points={"console_scripts": ["visio-memoria=visio_memoria_ros.cli:main"]},
)
