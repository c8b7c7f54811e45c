"""Where model files are found: an absolute path, the user's model folders or the installed share.

A model path parameter (``face_model_path``, ``dinov3_model_dir``, ...) is either absolute
(used as it is, ``~`` expanded) or relative, normally a bare name such as ``yolov8n-face.pt``,
looked up in this order and never in the current directory:

1. each folder of ``$VISIO_MEMORIA_MODELS`` (``:``-separated),
2. ``$XDG_DATA_HOME/visio_memoria/models`` (``~/.local/share/visio_memoria/models``),
3. ``share/visio_memoria/models`` under each ``$AMENT_PREFIX_PATH`` prefix that holds the
   package (where colcon or a ROS install put it),
4. ``models/`` of the source checkout this code runs from (a clone used without installing).

A model that is nowhere is a ``ModelNotFoundError`` naming every place searched. Detectors,
embedders, the activity head and the CLI all resolve their paths here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE = "visio_memoria"
#: Environment variable naming extra model folders, searched first.
MODELS_ENV = "VISIO_MEMORIA_MODELS"
#: How to get each model file.
MODELS_README = "models/README.md"
_SOURCE_MODELS = Path(__file__).resolve().parents[3] / "models"


class ModelNotFoundError(FileNotFoundError):
    """A model is in none of the places searched; ``searched`` lists them in order."""

    def __init__(self, what: str, name: str, searched: list[Path], marker: str | None = None
                 ) -> None:
        self.what = what
        self.name = name
        self.searched = list(searched)
        places = "; ".join(str(p) for p in self.searched)
        holding = f" (a folder holding {marker})" if marker else ""
        super().__init__(
            f"{what} '{name}'{holding} not found; looked in: {places}. Weights are never "
            "downloaded at run time: put it in one of these places (see "
            f"{MODELS_README} for how to get it) or give its absolute path."
        )


def installed_package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (an import can cost
    seconds or fail: facenet_pytorch imports torchvision, face_recognition_models needs the
    deprecated pkg_resources); None when it is not installed. For model files that ship
    inside a package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_search_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The folders a relative model path is looked up in, in order (see the module docstring)."""
    env = os.environ if env is None else env
    dirs: list[Path] = []
    for entry in env.get(MODELS_ENV, "").split(os.pathsep):
        if entry.strip():
            dirs.append(Path(entry.strip()).expanduser())
    xdg = env.get("XDG_DATA_HOME", "").strip()
    data_home = Path(xdg).expanduser() if xdg else Path(env.get("HOME", "~")).expanduser() / (
        ".local/share")
    dirs.append(data_home / PACKAGE / "models")
    for prefix in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        share = Path(prefix.strip()) / "share" / PACKAGE
        if prefix.strip() and share.is_dir():  # prefixes where the package is installed
            dirs.append(share / "models")
    dirs.append(_SOURCE_MODELS)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _usable(candidate: Path, kind: str, marker: str | None) -> bool:
    if kind == "dir":
        return candidate.is_dir() and (marker is None or (candidate / marker).is_file())
    return candidate.is_file()


def resolve_model(
    path: str | os.PathLike[str],
    what: str,
    *,
    kind: str = "file",
    marker: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Return the model file (``kind="file"``) or folder (``kind="dir"``) that ``path`` names.

    ``marker`` is a file a model folder must hold (``config.json``). Raises FileNotFoundError
    for an empty path, and ``ModelNotFoundError`` (one too) naming every place searched.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    text = str(path).strip()
    if not text:
        raise FileNotFoundError(f"no path given for the {what}; see {MODELS_README}")
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [d / given for d in model_search_dirs(env)]
    for candidate in candidates:
        if _usable(candidate, kind, marker):
            return candidate
    raise ModelNotFoundError(what, text, candidates, marker if kind == "dir" else None)


__all__ = ["MODELS_ENV", "ModelNotFoundError", "model_search_dirs", "resolve_model"]
