"""Detection written as text: parsing and box metrics.

Text form (targets and predictions): "ymin xmin ymax xmax label ; ymin ... label"
with integer coordinates in [0, 999] (the image's height / width quantized into
1000 bins) and a free-text label (may contain spaces). Boxes are compared as
continuous rectangles [ymin, ymax] x [xmin, xmax] on that grid.

Parsing never fails: an empty string means no boxes; a ';'-separated chunk that is
not "4 integers in [0, 999] with min <= max, then a label" is dropped and counted
as malformed; the rest of the prediction still counts.

Matching, per image and class: predictions are taken in output order; each one
matches the still-unmatched ground-truth box of its class with the highest IoU if
that IoU >= the threshold (true positive), otherwise it is a false positive (so a
duplicate of an already-found box is a false positive).

AP convention: text output carries no confidence scores, so every box has the same
score and a class's precision-recall curve is a single point (recall R, precision
P); its all-point-interpolated area, AP = P * R, is the class's AP. mAP averages
AP over the classes present in the ground truth (classes only ever predicted
affect precision, not the average; a ground-truth class never predicted has AP 0).
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from pali_pax.core import errors

NUM_BOX_BINS = 1000  # coordinates are integers in [0, NUM_BOX_BINS - 1]: floor(1000 * px / size)
OBJECT_SEPARATOR = ' ; '
# Up to 3 digits: the bins 0..999 of NUM_BOX_BINS.
_BOX = re.compile(r'^(\d{1,3})\s+(\d{1,3})\s+(\d{1,3})\s+(\d{1,3})\s+(\S.*)$', re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Box:
  """A labelled box on the 0-999 grid."""

  ymin: int
  xmin: int
  ymax: int
  xmax: int
  label: str


def parse_boxes(text: str | bytes) -> tuple[list[Box], int]:
  """Parses "ymin xmin ymax xmax label ; ..." into boxes, never raising.

  Returns:
    (boxes in text order, number of malformed non-empty chunks). Labels are
    lowercased with whitespace collapsed.
  """
  if isinstance(text, bytes):
    text = text.decode('utf-8', errors='replace')
  boxes, malformed = [], 0
  for chunk in str(text).split(OBJECT_SEPARATOR.strip()):
    chunk = chunk.strip()
    if not chunk:
      continue
    m = _BOX.match(chunk)
    if not m:
      malformed += 1
      continue
    ymin, xmin, ymax, xmax = (int(g) for g in m.groups()[:4])
    if ymin > ymax or xmin > xmax:
      malformed += 1
      continue
    boxes.append(Box(ymin, xmin, ymax, xmax, ' '.join(m.group(5).lower().split())))
  return boxes, malformed


def box_iou(a: Box, b: Box) -> float:
  """Intersection over union of two boxes (0 when both are empty)."""
  ih = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
  iw = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
  inter = max(ih, 0) * max(iw, 0)
  union = (a.ymax - a.ymin) * (a.xmax - a.xmin) + (b.ymax - b.ymin) * (b.xmax - b.xmin) - inter
  return inter / union if union > 0 else 0.0


def match_image(gt: Sequence[Box], pred: Sequence[Box], iou_threshold: float = 0.5) -> list[bool]:
  """For each prediction (in order), whether it is a true positive (see module doc)."""
  used = [False] * len(gt)
  hits = []
  for p in pred:
    best, best_iou = -1, iou_threshold
    for j, g in enumerate(gt):
      if used[j] or g.label != p.label:
        continue
      iou = box_iou(p, g)
      if iou >= best_iou and (best < 0 or iou > best_iou):
        best, best_iou = j, iou
    if best >= 0:
      used[best] = True
    hits.append(best >= 0)
  return hits


def _div(a: float, b: float) -> float:
  return a / b if b else 0.0


def _first(target: Any) -> Any:
  """The target text (a single-element reference list is unwrapped)."""
  if isinstance(target, (str, bytes)):
    return target
  if isinstance(target, np.ndarray) and target.ndim == 0:
    return target.item()
  items = list(target)
  return items[0] if items else ''


def detection_metrics(
  targets: Sequence[Any], predictions: Sequence[Any], iou_threshold: float = 0.5
) -> dict[str, float]:
  """Box metrics at one IoU threshold for text-form detections.

  Args:
    targets: ground-truth box texts (or one-element reference lists).
    predictions: predicted box texts (malformed parts count as no detection).
    iou_threshold: IoU for a match (0.5: keys end in '50').

  Returns:
    With t = round(100 * iou_threshold): {'map{t}': mAP (P * R per class, see the
    module doc; NaN without any ground-truth box), 'precision{t}', 'recall{t}'
    (share of ground-truth boxes found: the IoU-based accuracy), 'f1_{t}'} over all
    boxes (micro), all 0-100, and 'malformed_predictions': number of dropped chunks.
  """
  if len(targets) != len(predictions):
    raise errors.InputValidationError(f'{len(targets)} targets but {len(predictions)} predictions')
  n_gt: dict[str, int] = defaultdict(int)
  n_pred: dict[str, int] = defaultdict(int)
  n_tp: dict[str, int] = defaultdict(int)
  malformed = 0
  for target, prediction in zip(targets, predictions, strict=True):
    gt, _ = parse_boxes(_first(target))
    pred, bad = parse_boxes(prediction)
    malformed += bad
    for g in gt:
      n_gt[g.label] += 1
    for p, hit in zip(pred, match_image(gt, pred, iou_threshold), strict=True):
      n_pred[p.label] += 1
      n_tp[p.label] += hit
  aps = [_div(n_tp[c], n_pred[c]) * _div(n_tp[c], n_gt[c]) for c in n_gt]
  tp, n_p, n_g = sum(n_tp.values()), sum(n_pred.values()), sum(n_gt.values())
  precision, recall = _div(tp, n_p), _div(tp, n_g)
  t = round(100 * iou_threshold)
  return {
    f'map{t}': 100.0 * float(np.mean(aps)) if aps else float('nan'),
    f'precision{t}': 100.0 * precision,
    f'recall{t}': 100.0 * recall,
    f'f1_{t}': 100.0 * _div(2 * precision * recall, precision + recall),
    'malformed_predictions': float(malformed),
  }
