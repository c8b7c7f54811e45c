"""detector_node parameters."""

from .spec import ParamSpec

PARAMS: list[ParamSpec] = []
