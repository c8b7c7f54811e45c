"""MTCNN (P-Net, R-Net, O-Net) on one RGB image, with facenet-pytorch's weights.

The networks and the detection cascade are facenet-pytorch's (MIT licence,
``facenet_pytorch/models/mtcnn.py`` and ``models/utils/detect_face.py``, release 2.6.0),
ported for one image at a time; their weights are read from the files that package ships
(``facenet_pytorch/data/{p,r,o}net.pt``). Why not import the package: importing
``facenet_pytorch`` imports torchvision (for its NMS), and torchvision imports
``torch._dynamo``: 2.4 s of every start of the CLI and of detector_node on a 2-core CPU, and
about 150 MB of resident memory (``identify``'s peak), for two NMS calls. Here the NMS is a
few lines of numpy (the same rule as ``torchvision.ops.nms``); everything else — the image
pyramid, the box regression, the crops resized with ``mode="area"``, the thresholds — is
computed as facenet does, and ``test_perception_faces.py`` checks that boxes, scores and
landmarks equal facenet's own ``detect_face`` on real photos and video frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.functional import interpolate

from ..core.models import installed_package_dir


def weights_dir() -> Path:
    """The folder holding facenet-pytorch's ``pnet.pt``, ``rnet.pt`` and ``onet.pt``.

    Found without importing the package (which would import torchvision). ImportError when
    facenet-pytorch is not installed, FileNotFoundError when its data folder is incomplete.
    """
    package = installed_package_dir("facenet_pytorch")
    if package is None:
        raise ImportError(
            "face_backend 'mtcnn' needs the MTCNN weights that ship with facenet-pytorch: "
            "pip install facenet-pytorch"
        )
    folder = package / "data"
    missing = [n for n in ("pnet.pt", "rnet.pt", "onet.pt") if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"MTCNN weights {missing} not found in {folder}")
    return folder


class PNet(nn.Module):
    """MTCNN proposal network (fully convolutional, 12x12 receptive field, stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box regression (N, 4, h, w) and face probabilities (N, 2, h, w)."""
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    """MTCNN refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box regression (N, 4) and face probabilities (N, 2)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    """MTCNN output network on 48x48 crops: box, score and the 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Box regression (N, 4), landmarks (N, 10: five x then five y, relative to the box)
        and face probabilities (N, 2)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def load_nets(device: torch.device | str = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three networks with facenet-pytorch's weights, in eval mode on ``device``."""
    folder = weights_dir()
    nets = (PNet(), RNet(), ONet())
    for net, name in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        net.to(device).eval()
    return nets


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, best score first: ``torchvision.ops.nms``'s rule (a box is
    dropped when its IoU with a kept, better box exceeds the threshold; areas without +1)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet's final NMS: overlap = intersection / the smaller area (areas with +1)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, i].copy() for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        overlap = (w * h) / np.minimum(area[i], area[idx])
        order = idx[np.where(overlap <= threshold)]
    return np.asarray(pick, np.int64)


def _generate_boxes(reg: torch.Tensor, probs: torch.Tensor, scale: float,
                    threshold: float) -> torch.Tensor:
    """P-Net cells above ``threshold`` -> (N, 9) boxes: x1, y1, x2, y2, score, 4 regressions."""
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= threshold
    mask_inds = mask.nonzero()
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1)


def _bbreg(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    b1 = boxes[:, 0] + reg[:, 0] * w
    b2 = boxes[:, 1] + reg[:, 1] * h
    b3 = boxes[:, 2] + reg[:, 2] * w
    b4 = boxes[:, 3] + reg[:, 3] * h
    boxes[:, :4] = torch.stack([b1, b2, b3, b4]).permute(1, 0)
    return boxes


def _rerec(boxes: torch.Tensor) -> torch.Tensor:
    """Make the boxes square around their centres (side = the longer side)."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.max(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side.repeat(2, 1).permute(1, 0)
    return boxes


def _crops(image: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """The boxes' pixels (clipped to the image, 1-based as MTCNN's Matlab origin) resized to
    ``size`` x ``size`` by area averaging and normalised as the networks expect, and the mask
    of the boxes that have pixels in the image (the crops are of those only)."""
    h, w = image.shape[2:4]
    b = boxes.trunc().int().cpu().numpy()
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    inside = (ey > y - 1) & (ex > x - 1)
    data = [
        interpolate(image[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], size=(size, size), mode="area")
        for k in np.flatnonzero(inside)
    ]
    mask = torch.as_tensor(inside, device=boxes.device)
    if not data:
        return image.new_zeros((0, image.shape[1], size, size)), mask
    return (torch.cat(data, dim=0) - 127.5) * 0.0078125, mask


def _run(net: Any, data: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``net(data)`` in chunks of 512 crops (facenet's batching: bounded GPU memory, and the
    same per-batch arithmetic as facenet's own results)."""
    outs = [net(data[i:i + 512]) for i in range(0, len(data), 512)]
    return tuple(torch.cat(parts, dim=0) for parts in zip(*outs, strict=True))


def _pick(boxes: torch.Tensor, keep: np.ndarray) -> torch.Tensor:
    return boxes[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def detect_faces(
    image: np.ndarray,
    min_size: float,
    nets: tuple[Any, Any, Any],
    thresholds: tuple[float, float, float],
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Faces of one RGB uint8 image: boxes (N, 5: x1, y1, x2, y2, score) and landmarks
    (N, 5, 2), in image pixels. ``min_size``: the smallest face side searched [px];
    ``thresholds``: P-Net, R-Net and O-Net score thresholds; ``factor``: pyramid step."""
    pnet, rnet, onet = nets
    device = next(pnet.parameters()).device
    dtype = next(pnet.parameters()).dtype
    img = torch.as_tensor(np.ascontiguousarray(image), device=device)
    img = img.unsqueeze(0).permute(0, 3, 1, 2).type(dtype)
    h, w = img.shape[2:4]
    empty = np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)

    # First stage: P-Net over an image pyramid (the smallest level at 12 px per face).
    m = 12.0 / min_size
    scales = []
    scale, side = m, min(h, w) * m
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    stage = []
    for scale in scales:
        data = interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        reg, probs = pnet((data - 127.5) * 0.0078125)
        found = _generate_boxes(reg, probs[:, 1], scale, thresholds[0])
        arr = found.float().cpu().numpy()
        stage.append(_pick(found, nms(arr[:, :4], arr[:, 4], 0.5)))
    boxes = torch.cat(stage, dim=0) if stage else torch.zeros(0, 9, device=device)
    arr = boxes.float().cpu().numpy()
    boxes = _pick(boxes, nms(arr[:, :4], arr[:, 4], 0.7))
    if len(boxes) == 0:
        return empty
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([
        boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
        boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4],
    ]).permute(1, 0)
    boxes = _rerec(boxes)

    # Second stage: R-Net on 24x24 crops of the proposals.
    crops, inside = _crops(img, boxes, 24)
    boxes = boxes[inside]
    if len(boxes) == 0:
        return empty
    reg, probs = _run(rnet, crops)
    score = probs[:, 1]
    ipass = score > thresholds[1]
    boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
    reg = reg[ipass]
    arr = boxes.float().cpu().numpy()
    keep = torch.as_tensor(nms(arr[:, :4], arr[:, 4], 0.7), dtype=torch.long, device=device)
    boxes, reg = boxes[keep], reg[keep]
    if len(boxes) == 0:
        return empty
    boxes = _rerec(_bbreg(boxes, reg))

    # Third stage: O-Net on 48x48 crops: final boxes, scores and landmarks.
    crops, inside = _crops(img, boxes, 48)
    boxes = boxes[inside]
    if len(boxes) == 0:
        return empty
    reg, points, probs = _run(onet, crops)
    score = probs[:, 1]
    ipass = score > thresholds[2]
    points = points[ipass].permute(1, 0)
    boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
    reg = reg[ipass]
    w_i = boxes[:, 2] - boxes[:, 0] + 1
    h_i = boxes[:, 3] - boxes[:, 1] + 1
    points_x = w_i.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
    points_y = h_i.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
    points = torch.stack((points_x, points_y)).permute(2, 1, 0)
    boxes = _bbreg(boxes, reg)
    arr = boxes.float().cpu().numpy()
    keep = nms_min(arr[:, :4], arr[:, 4], 0.7)
    return arr[keep].astype(np.float32), points.float().cpu().numpy()[keep].astype(np.float32)


__all__ = ["ONet", "PNet", "RNet", "detect_faces",
           "load_nets", "nms", "nms_min", "weights_dir"]
