"""Bring your own segmenter: a PromptableSegmenter written here, outside the library, with the awkward cases of real
third-party models (an embedding grid covering the whole non-square frame, full-resolution masks instead of
low-resolution logits, SAM's -1 padding of point prompts), tracked by SamPDTracker and through the benchmark CLI
(``--model tests.test_byo_segmenter:BoxContrastSegmenter``)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter, masks_to_logits


class BoxContrastSegmenter(PromptableSegmenter):
    """A toy segmenter in the style of a third-party model.

    - the image is not resized or padded to a square: the embedding grid covers exactly the (non-square) frame,
      ``ceil(H / 8) x ceil(W / 8)`` cells of mean colour;
    - it computes full-resolution masks and converts them with ``masks_to_logits``;
    - a box segments the pixels inside it that differ from the median colour of the box's border; a positive point
      the pixels of a 24-px square around it that differ from that square's border; a negative point erases a disk
      of radius 6 around it; points labelled -1 are padding and are ignored (SAM's "not a point").
    """

    embed_stride = 8
    mask_stride = 4

    def __init__(self, threshold: float = 40.0):
        super().__init__()
        self.threshold = float(threshold)
        self.calls = 0

    def _encode(self, image, frame_number):
        h, w = image.shape[:2]
        x = torch.as_tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        ph, pw = -(-h // self.embed_stride) * self.embed_stride, -(-w // self.embed_stride) * self.embed_stride
        x = F.pad(x, (0, pw - w, 0, ph - h))
        emb = F.avg_pool2d(x, self.embed_stride)[0] - 0.5  # (3, ceil(H/8), ceil(W/8)): not square
        return ImageState(embedding=emb, image_size=(h, w), input_size=(h, w), embed_stride=self.embed_stride,
                          mask_stride=self.mask_stride, frame_number=frame_number, extra={"image": image})

    def _contrast(self, img, x0, y0, x1, y1):
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
        out = np.zeros((h, w), bool)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return out
        crop = img[y0:y1, x0:x1].astype(np.float32)
        border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
        ref = np.median(border, axis=0)
        out[y0:y1, x0:x1] = np.linalg.norm(crop - ref, axis=-1) > self.threshold
        return out

    def _decode(self, state, boxes, points, point_labels, multimask):
        self.calls += 1
        img = state.extra["image"]
        h, w = state.image_size
        n = boxes.shape[0] if boxes is not None else points.shape[0]
        yy, xx = np.mgrid[0:h, 0:w]
        masks = []
        for i in range(n):
            m = np.zeros((h, w), bool)
            if boxes is not None:
                m = self._contrast(img, *boxes[i].tolist())
            if points is not None:
                for (x, y), lab in zip(points[i].tolist(), point_labels[i].tolist()):
                    if lab == -1:  # padding: not a point
                        continue
                    if lab == 1 and boxes is None:
                        m |= self._contrast(img, x - 12, y - 12, x + 13, y + 13)
                    elif lab == 0:
                        m &= (xx - x) ** 2 + (yy - y) ** 2 > 36
            masks.append(m)
        full = torch.as_tensor(np.stack(masks))
        k = 3 if multimask else 1
        logits = masks_to_logits(state, full)[:, None].repeat(1, k, 1, 1)
        if multimask:  # a smaller and a larger variant (SAM's subpart / whole levels)
            logits[:, 0] -= 4.0
            logits[:, 2] += 4.0
        return Decoded(low_res_logits=logits, iou=torch.full((n, k), 0.8))


def test_masks_to_logits_round_trip():
    from sampd_plugin.synthetic import SyntheticScene

    scene = SyntheticScene(3, 2, 3, 70, 110)
    seg = BoxContrastSegmenter()
    state = seg.encode(scene.render(1)[0], 1)
    assert state.embedding.shape[-2:] == (9, 14)  # covers the 70 x 110 frame, not a square
    masks = torch.as_tensor(np.stack([scene.visible_masks(1)[i] for i in sorted(scene.visible_masks(1))]))
    logits = masks_to_logits(state, masks)
    assert logits.shape == (len(masks), 18, 28)
    back = seg.upsample(state, logits)
    for a, b in zip(back.numpy(), masks.numpy()):
        # up to about half a 4-px cell along the boundary of these small (~250-px) objects, and not shifted
        assert (a & b).sum() / (a | b).sum() > 0.85
        assert np.allclose(np.argwhere(a).mean(0), np.argwhere(b).mean(0), atol=0.5)
    with pytest.raises(ValueError, match="image size"):
        masks_to_logits(state, masks[:, :10])


def test_padding_points_are_ignored():
    from sampd_plugin.synthetic import SyntheticScene

    scene = SyntheticScene(1, 2, 2, 64, 96)
    seg = BoxContrastSegmenter()
    state = seg.encode(scene.render(1)[0], 1)
    box = torch.tensor([[0.0, 0.0, 96.0, 64.0]])
    plain = seg.decode(state, boxes=box)
    padded = seg.decode(state, boxes=box, points=torch.zeros((1, 3, 2)), point_labels=torch.full((1, 3), -1))
    assert torch.equal(plain.low_res_logits, padded.low_res_logits)


def test_custom_segmenter_tracks_with_sam_pd():
    from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
    from sampd_plugin.synthetic import SyntheticScene

    scene = SyntheticScene(2, 5, 2, 72, 104)
    seg = BoxContrastSegmenter()
    prompts = [ObjectPrompt(i, 1, mask=m) for i, m in scene.visible_masks(1).items()]
    results = list(SamPDTracker(seg).track(scene.iter_frames(), prompts))
    assert [r.frame_number for r in results] == [1, 2, 3, 4, 5]
    assert seg.calls > 0 and all(set(r.objects) == {1, 2} for r in results)
    found = [o for r in results[1:] for o in r.objects.values() if not o.lost]
    assert found, "the custom segmenter found nothing"


# --- through the SDK -----------------------------------------------------------------------------------------------
def test_sp_track_with_an_instance(make_synthetic):
    import sampd_plugin as sp

    ds = make_synthetic(num_videos=1, num_frames=4, num_objects=2, height=64, width=96)
    seg = BoxContrastSegmenter()
    summary = sp.track(ds, prompt_field="ground_truth", label_field="byo", model=seg, progress=False)
    name = f"custom:{BoxContrastSegmenter.__module__}.BoxContrastSegmenter"  # the module as pytest imported it
    assert summary["model"] == name
    assert summary["frames"] == 4 and seg.calls > 0
    sample = ds.first()
    assert sample["byo_track"]["settings"]["model"] == name
    assert all(f["byo"] is not None and len(f["byo"].detections) == 2 for f in sample.frames.values())
    # resume: an identical run (same class, same settings) skips the finished video
    again = sp.track(ds, prompt_field="ground_truth", label_field="byo", model=BoxContrastSegmenter(),
                     progress=False)
    assert again["tracked"] == [] and len(again["skipped"]) == 1
    # a run recorded by name cannot be rebuilt from the name: repropagation asks for the instance
    with pytest.raises(sp.SampdInputError, match="pass the instance itself"):
        sp.repropagate(ds.first(), "byo", from_frame=2)
    out = sp.repropagate(ds.first(), "byo", from_frame=2, model=seg, progress=False)
    assert out["model"] == name
    with pytest.raises(sp.SampdInputError, match="cannot be delegated"):
        sp.queue_track(ds, label_field="byo2", model=seg)
    with pytest.raises(sp.SampdInputError, match="takes no checkpoint"):
        sp.track(ds, label_field="byo3", model=seg, checkpoint="/x.pth", progress=False)
    with pytest.raises(sp.SampdInputError, match="unknown model"):
        sp.track(ds, label_field="byo3", model=object(), progress=False)
