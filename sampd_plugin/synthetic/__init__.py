"""Generated videos with exact ground truth: :mod:`.scene` (a pure, closed-form scene generator),
:mod:`.dataset` (videos written with ffmpeg, FiftyOne datasets of scenes) and :mod:`.trees` (miniature DAVIS /
YouTube-VOS / UVO trees in the official layouts).

The names below are re-exported so that ``from sampd_plugin.synthetic import SyntheticScene, make_dataset`` works;
importing this package imports no FiftyOne.
"""

from sampd_plugin.synthetic.dataset import dataset_scene, make_dataset, make_image_dataset, write_video
from sampd_plugin.synthetic.scene import SCENARIOS, SHAPES, TEXTURES, ObjectSpec, ObjectState, SyntheticScene, mask_box

__all__ = ["SCENARIOS", "SHAPES", "TEXTURES", "ObjectSpec", "ObjectState", "SyntheticScene", "mask_box", "make_dataset",
           "make_image_dataset", "dataset_scene", "write_video"]
