"""SynthPerson scenes for the corpus tests: one person per scene, the
detections of each (one per filter rule that must reject it in scene 0),
and an unreadable file."""
import glob
import json
import os.path as osp

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gadms.datasets import SynthPerson

NUM_SCENES = 10
GOOD_BOX = [50, 50, 170, 350]  # 120 x 300: aspect 2.5
TEMPLATES = ['A [person] in a [colour] [upper] and [colour] [lower].',
             'The [person] wears [colour] [shoes] and carries a [bag].']


def _keypoints(hidden=()):
    points = [[100.0, 60.0 + 15 * i, 0.9] for i in range(17)]
    for i in hidden:
        points[i][2] = 0.1
    return points


def good(**changes):
    return dict(dict(box=GOOD_BOX, score=0.95, keypoints=_keypoints()),
                **changes)


# one detection per rule that must reject it (all in scene 0)
REJECTED = {
    'too small': good(box=[300, 50, 360, 200]),
    'aspect ratio': good(box=[300, 50, 500, 300]),
    'low confidence': good(score=0.5),
    'too few keypoints': good(keypoints=_keypoints(hidden=range(11))),
    'no hip keypoint': good(keypoints=_keypoints(hidden=(11, 12))),
    'too few head keypoints': good(keypoints=_keypoints(hidden=(1, 2, 3,
                                                                 4))),
    'no keypoints': dict(box=GOOD_BOX, score=0.95),
}



def make_scenes(root) -> str:
    """Write ``root/images/`` and ``root/detections.json``; returns root."""
    images = root / 'images'
    images.mkdir()
    people = SynthPerson(split='train', image_size=(300, 120),
                         num_identities=dict(train=NUM_SCENES, val=1,
                                             test=1),
                         images_per_identity=1)
    detections = {}
    for i in range(NUM_SCENES):
        scene = np.full((400, 600, 3), 90, np.uint8)
        scene[50:350, 50:170] = people.get_data_info(2 * i)['img']
        cv2.imwrite(str(images / f'scene_{i:02d}.png'), scene)
        detections[f'scene_{i:02d}.png'] = [good()]
    detections['scene_00.png'] += list(REJECTED.values())
    (images / 'broken.jpg').write_bytes(b'not an image')
    (root / 'detections.json').write_text(json.dumps(detections))
    return str(root)




def exported_rows(out: str) -> list:
    """The rows of the exported corpus ``out/data``, in corpus order."""
    return pa.concat_tables(pq.read_table(f) for f in sorted(glob.glob(
        osp.join(out, 'data', '*.parquet')))).to_pylist()
