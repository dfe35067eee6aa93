"""An exact, tiny promptable segmenter over given id maps: the tracker tests' test double.

Unlike the synthetic segmenter (sampd_plugin.backends.synthetic), it does not degrade with prompt noise: a box
segments the visible part *inside the box* of the object with most pixels in it (nothing if none), a positive
point the whole object under it. It makes the tracker's bookkeeping (start frames, lost / re-acquire, direction,
decoder calls) checkable exactly.
"""

import numpy as np
import torch
import torch.nn.functional as F

from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter


class ToyBackend(PromptableSegmenter):
    """``id_maps[frame_number]`` is an ``(H, W)`` int map (0 = background) of that frame."""

    embed_stride = 4

    def __init__(self, id_maps, num_ids=8, preferred_batch_size=None):
        super().__init__()
        self.id_maps = id_maps
        self.num_ids = num_ids
        self.preferred_batch_size = preferred_batch_size

    def _encode(self, image, frame_number):
        ids = torch.as_tensor(self.id_maps[frame_number])
        h, w = ids.shape
        side = -(-max(h, w) // self.embed_stride) * self.embed_stride
        padded = torch.zeros((side, side), dtype=torch.long)
        padded[:h, :w] = ids
        onehot = F.one_hot(padded, self.num_ids).permute(2, 0, 1).float()
        emb = F.avg_pool2d(onehot[None], self.embed_stride)[0]
        return ImageState(emb, (h, w), (h, w), self.embed_stride, 1, frame_number, {"ids": padded})

    def _decode(self, state, boxes, points, point_labels, multimask):
        ids = state.extra["ids"]
        side = ids.shape[0]
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        n = boxes.shape[0] if boxes is not None else points.shape[0]
        k = 3 if multimask else 1
        out = torch.zeros((n, k, side, side), dtype=torch.bool)
        for i in range(n):
            allowed = torch.ones_like(ids, dtype=torch.bool)
            target = None
            if points is not None:
                for (x, y), lab in zip(points[i].long().tolist(), point_labels[i].tolist()):
                    if lab == 0 and ids[y, x] > 0:
                        allowed &= ids != ids[y, x]
                    elif lab == 1:
                        target = int(ids[y, x])
            if boxes is not None:
                x0, y0, x1, y1 = boxes[i].tolist()
                inside = (xs >= int(x0)) & (xs < int(np.ceil(x1))) & (ys >= int(y0)) & (ys < int(np.ceil(y1)))
                counts = torch.bincount(ids[inside & allowed].reshape(-1), minlength=self.num_ids)
                counts[0] = 0
                if target is None and counts.max() > 0:
                    target = int(counts.argmax())
                region = inside
            else:
                region = torch.ones_like(allowed)
            if not target:
                continue
            whole = (ids == target) & allowed & region
            out[i, -1] = whole
            if multimask:  # subpart, part, whole
                out[i, 1] = whole & (ys < ys[whole].float().mean())
                out[i, 0] = whole & (ys < ys[whole].float().mean()) & (xs < xs[whole].float().mean())
        logits = out.float() * 2 - 1
        iou = torch.full((n, k), 0.9)
        return Decoded(low_res_logits=logits, iou=iou)


def moving_squares(num_frames, size=(64, 80), objects=((1, 8, 8, 2), (2, 40, 30, -1)), side=12):
    """Id maps of squares moving right by ``dx`` px per frame: ``objects`` are ``(id, x0, y0, dx)``."""
    maps = {}
    for f in range(1, num_frames + 1):
        m = np.zeros(size, np.int64)
        for oid, x0, y0, dx in objects:
            x = x0 + dx * (f - 1)
            m[y0 : y0 + side, max(x, 0) : max(x + side, 0)] = oid
        maps[f] = m
    return maps


def frames_of(id_maps, order=None):
    """``(frame_number, image)`` pairs (the toy backend reads the id maps, the image is a placeholder)."""
    for f in order or sorted(id_maps):
        h, w = id_maps[f].shape
        yield f, np.zeros((h, w, 3), np.uint8)
