"""Stage 1: keep person boxes that make good text-person training images.

Detectors return, per image, ``Detection`` records; ``PersonFilterRules``
(the WebPerson rules, method.md 7.1) accepts or rejects each with a reason.
Keypoints follow the COCO order (17 points).

A detector is called as ``detector(image_name, image)`` on one BGR image;
one that runs faster on a batch (a GPU model) also has
``detect_batch(image_names, images)``, which the filter stage prefers.
"""
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

# COCO keypoints: 0 nose, 1-2 eyes, 3-4 ears, 11-12 hips
HEAD_KEYPOINTS = (0, 1, 2, 3, 4)
HIP_KEYPOINTS = (11, 12)


@dataclass
class Detection:
    """One person box ``[x1, y1, x2, y2]`` (pixels), its confidence and,
    from a pose model, ``keypoints`` ``[17, 3]`` (x, y, visibility)."""

    box: Sequence[float]
    score: float
    keypoints: Optional[np.ndarray] = None


@dataclass
class PersonFilterRules:
    """WebPerson's person rules: the crop's shorter side at least
    ``min_short_side`` px, height:width in ``[min_aspect, max_aspect]``,
    confidence above ``min_score``, at least ``min_keypoints`` visible
    keypoints with ``min_hips`` hip and ``min_head`` head keypoints (a
    keypoint is visible when its confidence exceeds
    ``keypoint_threshold``)."""

    min_short_side: float = 90
    min_aspect: float = 2.0
    max_aspect: float = 4.0
    min_score: float = 0.85
    min_keypoints: int = 8
    min_hips: int = 1
    min_head: int = 2
    keypoint_threshold: float = 0.5
    require_keypoints: bool = True

    def reject_reason(self, detection: Detection) -> Optional[str]:
        """``None`` when the detection passes, else the failed rule."""
        x1, y1, x2, y2 = detection.box
        width, height = x2 - x1, y2 - y1
        if min(width, height) < self.min_short_side:
            return 'too small'
        if not self.min_aspect <= height / max(width, 1e-6) <= \
                self.max_aspect:
            return 'aspect ratio'
        if detection.score <= self.min_score:
            return 'low confidence'
        if detection.keypoints is None:
            return 'no keypoints' if self.require_keypoints else None
        visible = np.asarray(detection.keypoints)[:, 2] > \
            self.keypoint_threshold
        if visible.sum() < self.min_keypoints:
            return 'too few keypoints'
        if visible[list(HIP_KEYPOINTS)].sum() < self.min_hips:
            return 'no hip keypoint'
        if visible[list(HEAD_KEYPOINTS)].sum() < self.min_head:
            return 'too few head keypoints'
        return None


class PrecomputedDetector:
    """Detections read from a JSON file ``{image name: [{"box": [x1, y1,
    x2, y2], "score": s, "keypoints": [[x, y, v] x 17] (optional)}]}``
    (image names relative to the image folder)."""

    def __init__(self, path: str) -> None:
        with open(path, encoding='utf-8') as f:
            content = json.load(f)
        if not isinstance(content, dict):
            raise ValueError(f'{path}: expected an object mapping image '
                             'names to detection lists')
        self.path = path
        self.detections: Dict[str, List[Detection]] = {}
        for name, records in content.items():
            self.detections[name] = [
                self._detection(record, name, i)
                for i, record in enumerate(records)
            ]

    def _detection(self, record, name: str, index: int) -> Detection:
        for key in ('box', 'score'):
            if key not in record:
                raise ValueError(f'{self.path}: {name} detection {index} '
                                 f'has no field "{key}"')
        keypoints = record.get('keypoints')
        if keypoints is not None:
            keypoints = np.asarray(keypoints, dtype=np.float32)
            if keypoints.shape != (17, 3):
                raise ValueError(
                    f'{self.path}: {name} detection {index} field '
                    f'"keypoints" must be 17 x 3, got {keypoints.shape}')
        return Detection(record['box'], float(record['score']), keypoints)

    def __call__(self, image_name: str, image: np.ndarray) -> List[Detection]:
        return self.detections.get(image_name, [])


@dataclass
class UltralyticsDetector:
    """Person boxes with keypoints from a local ultralytics YOLO pose model
    (e.g. ``yolo11x-pose.pt``, which detects people and their 17 COCO
    keypoints in one pass). ultralytics is an optional dependency."""

    pose_weights: str
    device: str = 'cpu'
    _models: list = field(default_factory=list, repr=False)

    def _load(self) -> None:
        try:
            from ultralytics import YOLO
        except ImportError as err:
            raise ImportError(
                'UltralyticsDetector needs ultralytics (pip install '
                'ultralytics) and local weight files; or use '
                'PrecomputedDetector with detections computed elsewhere'
            ) from err
        if not osp.isfile(self.pose_weights):
            raise FileNotFoundError(
                f'YOLO weights {self.pose_weights} not found')
        self._models = [YOLO(self.pose_weights)]

    def __call__(self, image_name: str, image: np.ndarray) -> List[Detection]:
        return self.detect_batch([image_name], [image])[0]

    def detect_batch(self, image_names: Sequence[str],
                     images: Sequence[np.ndarray]) -> List[List[Detection]]:
        """One forward pass of the pose model over ``images``."""
        if not self._models:
            self._load()
        results = self._models[0](list(images), device=self.device,
                                  verbose=False)
        return [self._detections(result) for result in results]

    @staticmethod
    def _detections(result) -> List[Detection]:
        boxes = result.boxes
        keypoints = result.keypoints.data.cpu().numpy() \
            if result.keypoints is not None else [None] * len(boxes)
        return [
            Detection(box.tolist(), float(score), kpts)
            for box, score, cls, kpts in zip(
                boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(),
                boxes.cls.cpu().numpy(), keypoints) if int(cls) == 0
        ]


@dataclass
class ContrastBoxDetector:
    """A small CPU detector for synthetic scenes and tests: every connected
    region that differs from the background (the median colour of the
    image border) by more than ``threshold`` in some channel, with an area
    of at least ``min_area`` pixels, is a person box. The score is the
    fraction of the box the region fills; there are no keypoints (use it
    with ``PersonFilterRules(require_keypoints=False)``).
    """

    threshold: int = 24
    min_area: int = 400

    def __call__(self, image_name: str, image: np.ndarray) -> List[Detection]:
        border = np.concatenate([image[0], image[-1], image[:, 0],
                                 image[:, -1]])
        background = np.median(border, axis=0)
        foreground = (np.abs(image.astype(np.int16) - background).max(
            axis=2) > self.threshold).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(foreground, 8)
        detections = []
        # component 0 is the background
        for x, y, w, h, area in stats[1:count]:
            if area >= self.min_area:
                detections.append(Detection(
                    [int(x), int(y), int(x + w), int(y + h)],
                    float(area) / float(w * h)))
        return detections
