"""Stage 1 on Ray Data: detect people, keep the boxes that pass the
WebPerson rules, store each crop's bytes with its provenance.

Input: the download stage's output folder (its ``images/bucket=K/`` parts
are the shards; rows with status ``ok``) or a folder of image files (listed
once into ``sources/<shard>.parquet``, ``shard_size`` files per shard).
Output under ``out_dir``::

    crops/<shard>/*.parquet   one row per outcome: a kept crop (its bytes,
                              box, score, id), a rejected detection (the
                              rule in ``status``), an image without a
                              person, an unreadable or oversized image
    filter_report.json        counts per status, images/s of the run

Detection runs in a pool of actors (each loads its detector once; a GPU
detector asks for ``gpus_per_actor``); reading and writing run in tasks of
a quarter CPU. A crop keeps the format of its source: PNG sources give
PNG crops (lossless), others JPEG at quality 95.
"""
import glob
import os.path as osp
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.common.atomic import atomic_folder, write_json, write_parquet
from gadms.common.formats import IMAGE_EXTENSIONS
from gadms.common.image_limits import (DEFAULT_MAX_PIXELS, ImageLoadError,
                                       check_decoded_size)
from .filtering import Detection, PersonFilterRules
from .sharded import (ACTOR_RETRY_ARGS, IO_CPUS, TASK_RETRY_ARGS, over_shards,
                      parquet_files, run_shard_groups, value_counts)

UNREADABLE = ('unreadable image', 'oversized image')
# the most unreadable images named in the report (all are in the rows)
LISTED_UNREADABLE = 1000

CROP_SCHEMA = pa.schema([
    ('shard', pa.string()),
    ('source', pa.string()),     # image file name or download key
    ('detection', pa.int32()),   # k-th detection; -1 for an image outcome
    ('status', pa.string()),     # kept / rejected: RULE / no person / ...
    ('box', pa.list_(pa.int32())),
    ('score', pa.float64()),
    ('id', pa.string()),         # kept crops: '<shard>/<source>_<k>.<ext>'
    ('image', pa.binary()),      # kept crops: the encoded crop
])


@dataclass
class FilterOptions:
    """How the filter stage runs.

    Args:
        rules (PersonFilterRules): Which boxes are kept.
        max_pixels (int): Images that decode to more pixels are not
            decoded (status ``oversized image``).
        shard_size (int): Files per shard of a folder input.
        batch_size (int): Images per detector call.
        actors (int): Detector actors.
        cpus_per_actor (float): CPUs each actor asks Ray for.
        gpus_per_actor (float): GPUs each actor asks Ray for.
        shards_per_run (int): Shards per Ray Data pipeline: the actors are
            started once per group, and a killed driver loses at most the
            group in flight.
    """

    rules: PersonFilterRules = field(default_factory=PersonFilterRules)
    max_pixels: int = DEFAULT_MAX_PIXELS
    shard_size: int = 1000
    batch_size: int = 16
    actors: int = 1
    cpus_per_actor: float = 0.5
    gpus_per_actor: float = 0
    shards_per_run: int = 64


def is_download_output(folder: str) -> bool:
    return osp.isfile(osp.join(folder, 'download_report.json'))


def _download_shards(folder: str) -> Dict[str, List[str]]:
    """``images/bucket=K/`` parts of a download output, by shard name."""
    shards = {}
    for part in sorted(glob.glob(osp.join(folder, 'images', 'bucket=*'))):
        if osp.isdir(part):
            bucket = int(osp.basename(part).split('=', 1)[1])
            shards[f'{bucket:05d}'] = parquet_files(part, depth=0)
    return shards


def _folder_shards(image_dir: str, out_dir: str,
                   shard_size: int) -> Dict[str, List[str]]:
    """The image files of ``image_dir`` (sorted, recursive), listed once
    into ``out_dir/sources/<shard>.parquet`` (a re-run reuses the listing,
    so that shards keep their images)."""
    listing = osp.join(out_dir, 'sources')
    if not osp.isdir(listing):
        names = sorted(
            osp.relpath(p, image_dir)
            for p in glob.glob(osp.join(image_dir, '**', '*'),
                               recursive=True)
            if p.lower().endswith(IMAGE_EXTENSIONS))
        with atomic_folder(listing) as part:
            for start in range(0, len(names), shard_size):
                shard = f'{start // shard_size:05d}'
                chunk = names[start:start + shard_size]
                write_parquet(pa.table(dict(shard=[shard] * len(chunk),
                                            source=chunk)),
                              osp.join(part, f'{shard}.parquet'))
    return {osp.basename(f)[:-len('.parquet')]: [f]
            for f in parquet_files(listing, depth=0)}


def read_folder_images(batch: Dict[str, np.ndarray], files: Dict[str, list],
                       image_dir: str, batch_size: int) -> Iterator[pa.Table]:
    """For the shard in ``batch`` (one row), its listed files with their
    bytes (``image``; null when unreadable), ``batch_size`` at a time."""
    for listing in files[batch['shard'][0]]:
        table = pq.read_table(listing, partitioning=None)
        for start in range(0, len(table), batch_size):
            chunk = table.slice(start, batch_size)
            images = []
            for source in chunk['source'].to_pylist():
                try:
                    with open(osp.join(image_dir, source), 'rb') as f:
                        images.append(f.read())
                except OSError:
                    images.append(None)
            yield chunk.append_column('image', pa.array(images, pa.binary()))


def read_downloaded_images(batch: Dict[str, np.ndarray],
                           files: Dict[str, list],
                           batch_size: int) -> Iterator[pa.Table]:
    """For the shard in ``batch`` (one row), the rows of its download part
    with status ``ok`` (``shard``, ``source``: the key as text, ``image``),
    ``batch_size`` at a time: a part of many GB is never read whole."""
    shard = batch['shard'][0]
    for file in files[shard]:
        for chunk in pq.ParquetFile(file).iter_batches(
                batch_size, columns=['key', 'status', 'image']):
            chunk = pa.Table.from_batches([chunk])
            chunk = chunk.filter(pc.equal(chunk['status'], 'ok'))
            yield pa.table(dict(
                shard=pa.array([shard] * len(chunk), pa.string()),
                source=pc.cast(chunk['key'], pa.string()),
                image=chunk['image']))


class DetectAndCrop:
    """The detector actor of ``map_batches``: decodes a batch of images,
    detects people, applies the rules and encodes the kept crops.

    Args:
        detector: ``detector(name, image)`` (and optionally
            ``detect_batch(names, images)``); built once per actor.
        rules (PersonFilterRules): Which detections are kept.
        max_pixels (int): Decoded-pixel cap.
    """

    def __init__(self, detector: Callable, rules: PersonFilterRules,
                 max_pixels: int) -> None:
        self.detector = detector
        self.rules = rules
        self.max_pixels = max_pixels

    def _decode(self, encoded: Optional[bytes], source: str
                ) -> Tuple[Optional[np.ndarray], str]:
        if encoded is None:
            return None, 'unreadable image'
        try:
            check_decoded_size(encoded, self.max_pixels, f'image {source}')
        except ImageLoadError:
            return None, 'oversized image'
        image = cv2.imdecode(np.frombuffer(encoded, np.uint8),
                             cv2.IMREAD_COLOR)
        return image, 'no person' if image is not None else \
            'unreadable image'

    def _detect(self, names: Sequence[str], images: Sequence[np.ndarray]
                ) -> List[List[Detection]]:
        if not images:
            return []
        if hasattr(self.detector, 'detect_batch'):
            return self.detector.detect_batch(names, images)
        return [self.detector(n, i) for n, i in zip(names, images)]

    def __call__(self, batch: Dict[str, np.ndarray]) -> pa.Table:
        rows = {name: [] for name in CROP_SCHEMA.names}

        def add(**row):
            for name in CROP_SCHEMA.names:
                rows[name].append(row.get(name))

        decoded = []
        for shard, source, encoded in zip(batch['shard'], batch['source'],
                                          batch['image']):
            image, status = self._decode(encoded, source)
            if image is None:
                add(shard=shard, source=source, detection=-1, status=status)
            else:
                decoded.append((shard, source, encoded, image))
        found = self._detect([d[1] for d in decoded], [d[3] for d in decoded])
        for (shard, source, encoded, image), detections in zip(decoded,
                                                               found):
            if not detections:
                add(shard=shard, source=source, detection=-1,
                    status='no person')
            for k, detection in enumerate(detections):
                row = dict(shard=shard, source=source, detection=k,
                           score=float(detection.score))
                reason = self.rules.reject_reason(detection)
                if reason:
                    add(status=f'rejected: {reason}', **row)
                    continue
                x1, y1, x2, y2 = (int(round(v)) for v in detection.box)
                png = bytes(encoded[:4]) == b'\x89PNG'
                crop = image[max(y1, 0):y2, max(x1, 0):x2]
                add(status='kept', box=[x1, y1, x2, y2],
                    id=f'{shard}/{source}_{k}.{"png" if png else "jpg"}',
                    image=_encode(crop, png), **row)
        return pa.Table.from_pydict(rows, schema=CROP_SCHEMA)


def _encode(crop: np.ndarray, png: bool) -> bytes:
    if png:
        return cv2.imencode('.png', crop)[1].tobytes()
    return cv2.imencode('.jpg', crop, [cv2.IMWRITE_JPEG_QUALITY,
                                       95])[1].tobytes()


def crop_shard_folder(out_dir: str, shard: str) -> str:
    return osp.join(out_dir, 'crops', shard)


def finished_crop_shards(out_dir: str) -> List[str]:
    """Shards the filter stage has finished, sorted."""
    return sorted(osp.basename(p) for p in glob.glob(
        osp.join(out_dir, 'crops', '*')) if osp.isdir(p))


def kept_crops(out_dir: str, columns: Sequence[str] = ('id', 'source',
                                                     'image')
               ) -> Iterator[dict]:
    """The kept crops of every finished shard (``columns`` of each), one
    shard in memory at a time."""
    for shard in finished_crop_shards(out_dir):
        for file in parquet_files(crop_shard_folder(out_dir, shard),
                                  depth=0):
            table = pq.read_table(file, columns=['status', *columns],
                                  partitioning=None)
            yield from table.filter(pc.equal(
                table['status'], 'kept')).select(list(columns)).to_pylist()


def run_filter_stage(source: str, detector: Callable, out_dir: str,
                     options: FilterOptions = FilterOptions()) -> dict:
    """Filter every image of ``source`` (a download output or a folder of
    images) into ``out_dir`` (layout in the module docstring); a re-run
    skips finished shards. Returns (and writes) the report."""
    import ray.data
    from_download = is_download_output(source)
    shards = _download_shards(source) if from_download else \
        _folder_shards(source, out_dir, options.shard_size)
    pending = [s for s in shards
               if not osp.isdir(crop_shard_folder(out_dir, s))]

    def build(group: List[str]):
        # the input is read by one task per shard from the file lists, not
        # by read_parquet: its file-listing step asks for a whole CPU, which
        # a one-CPU machine with a detector actor does not have
        reader = read_downloaded_images if from_download else partial(
            read_folder_images, image_dir=source)
        # one reader per detector actor: enough to feed it, and as many
        # processes for 2,000 images as for 2 million
        return over_shards(group).map_batches(
            reader, batch_size=1, num_cpus=IO_CPUS,
            compute=ray.data.TaskPoolStrategy(size=max(1, options.actors)),
            fn_kwargs=dict(files={s: shards[s] for s in group},
                           batch_size=options.batch_size),
            **TASK_RETRY_ARGS).map_batches(
            DetectAndCrop, fn_constructor_kwargs=dict(
                detector=detector, rules=options.rules,
                max_pixels=options.max_pixels),
            compute=ray.data.ActorPoolStrategy(size=options.actors),
            batch_size=options.batch_size, num_cpus=options.cpus_per_actor,
            num_gpus=options.gpus_per_actor, **ACTOR_RETRY_ARGS)

    start = time.monotonic()
    run_shard_groups(pending, build, lambda s: crop_shard_folder(out_dir, s),
                     CROP_SCHEMA, osp.join(out_dir, 'crops.part'),
                     options.shards_per_run)
    seconds = time.monotonic() - start
    report = filter_report(out_dir, shards)
    images_this_run = _count_images(
        [f for s in pending
         for f in parquet_files(crop_shard_folder(out_dir, s), depth=0)])
    report.update(images_this_run=images_this_run,
                  seconds_this_run=round(seconds, 2),
                  images_per_s_this_run=round(images_this_run / seconds, 2)
                  if pending and seconds else None)
    write_json(osp.join(out_dir, 'filter_report.json'), report, indent=1)
    return report


def _count_images(files: Sequence[str]) -> int:
    """Input images behind crop rows: each image has exactly one row with
    ``detection`` 0 (its first detection) or -1 (an image outcome)."""
    return sum(pc.sum(pc.less_equal(pq.read_table(
        f, columns=['detection'], partitioning=None)['detection'],
        0)).as_py() or 0 for f in files)


def filter_report(out_dir: str, shards: Sequence[str]) -> dict:
    """Counts over every finished shard: images, detections, kept,
    rejected per rule, unreadable images (the first
    ``LISTED_UNREADABLE`` by name)."""
    files = parquet_files(osp.join(out_dir, 'crops'))
    counts = value_counts(files, 'status')
    unreadable = []
    for file in files:
        table = pq.read_table(file, columns=['source', 'status'],
                              partitioning=None)
        unreadable += table.filter(pc.is_in(
            table['status'], pa.array(UNREADABLE)))['source'].to_pylist()
    images = _count_images(files)
    return dict(
        shards=len(shards), finished_shards=len(
            finished_crop_shards(out_dir)),
        images=images,
        decoded_images=images - sum(counts.get(s, 0) for s in UNREADABLE),
        detections=sum(v for k, v in counts.items()
                       if k == 'kept' or k.startswith('rejected: ')),
        kept=counts.get('kept', 0),
        rejected={k[len('rejected: '):]: v for k, v in counts.items()
                  if k.startswith('rejected: ')},
        counts=counts,
        unreadable_images=sorted(unreadable)[:LISTED_UNREADABLE])
