"""The three resumable stages that turn images into a WebPerson corpus.

``out_dir`` layout::

    crops/<shard>/<image>_<k>.png     stage 1: kept person crops
    manifest/<shard>.jsonl (+ .done)  stage 1: id, crop, source, box, score
    filter_report.json
    captions.jsonl                    stage 2: id, caption1, caption2, ...
    failures.jsonl                    stage 2: id, error (retried on re-run)
    caption_report.json
    data/train-*.parquet              stage 3: the WebPerson layout
    export_report.json
"""
import glob
import json
import os
import os.path as osp
import re
import shutil
import threading
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gadms.datasets.transforms.loading import (DEFAULT_MAX_PIXELS,
                                               ImageLoadError,
                                               check_decoded_size)
from gadms.utils.progress import Progress
from .filtering import PersonFilterRules

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
REFUSALS = re.compile(
    r"\b(i'?m sorry|i am sorry|i can(no|')t|i cannot|unable to|as an ai|"
    r'cannot (help|assist|describe)|no person)\b', re.IGNORECASE)


def _write_json(path: str, content: dict) -> None:
    part = path + '.part'
    with open(part, 'w', encoding='utf-8') as f:
        json.dump(content, f, indent=1)
    os.replace(part, path)


def _read_jsonl(path: str) -> List[dict]:
    """Complete lines of a JSONL file; a torn last line (a kill while
    writing) is cut off the file."""
    if not osp.exists(path):
        return []
    with open(path, 'rb') as f:
        content = f.read()
    complete = content[:content.rfind(b'\n') + 1]
    if len(complete) != len(content):
        with open(path, 'r+b') as f:
            f.truncate(len(complete))
    return [json.loads(line) for line in complete.decode().splitlines()]


def run_filter_stage(image_dir: str,
                     detector: Callable,
                     out_dir: str,
                     rules: PersonFilterRules = PersonFilterRules(),
                     shard_size: int = 1000,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Detect people in every image of ``image_dir``, keep the boxes that
    pass ``rules`` and write their crops with provenance.

    An image whose header says it decodes to more than ``max_pixels``
    pixels is not decoded: it is counted (``oversized image``) and listed
    by name with the unreadable ones.

    Images are processed in shards of ``shard_size`` (sorted names); a
    finished shard is marked ``.done`` and skipped by a re-run. Returns
    (and writes) the report: images, detections, kept, rejected per rule,
    and the unreadable images by name.
    """
    names = sorted(
        osp.relpath(p, image_dir)
        for p in glob.glob(osp.join(image_dir, '**', '*'), recursive=True)
        if p.lower().endswith(IMAGE_EXTENSIONS))
    os.makedirs(osp.join(out_dir, 'manifest'), exist_ok=True)
    report_path = osp.join(out_dir, 'filter_report.json')
    progress = Progress(len(names), 'filtering images')
    for start in range(0, len(names), shard_size):
        shard = f'{start // shard_size:05d}'
        manifest = osp.join(out_dir, 'manifest', f'{shard}.jsonl')
        batch = names[start:start + shard_size]
        if not osp.exists(manifest + '.done'):
            _write_json(manifest[:-len('.jsonl')] + '.counts.json',
                        dict(_filter_shard(image_dir, batch, detector,
                                           rules, out_dir, shard,
                                           manifest, max_pixels)))
            open(manifest + '.done', 'w').close()
        progress.update(len(batch))
    progress.close()
    # the report is rebuilt from every finished shard's counts, so a kill
    # after a shard's .done cannot lose them
    counts = Counter()
    for path in sorted(glob.glob(osp.join(out_dir, 'manifest',
                                          '*.counts.json'))):
        if osp.exists(path[:-len('.counts.json')] + '.jsonl.done'):
            counts.update(_read_json(path))
    unreadable = []
    for path in sorted(glob.glob(osp.join(out_dir, 'manifest',
                                          '*.unreadable'))):
        unreadable += open(path, encoding='utf-8').read().splitlines()
    report = dict(counts=dict(counts), images=len(names),
                  kept=counts['kept'], unreadable_images=unreadable,
                  rejected={k[len('rejected: '):]: v
                            for k, v in counts.items()
                            if k.startswith('rejected: ')})
    _write_json(report_path, report)
    return report


def _read_json(path: str) -> dict:
    if not osp.exists(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _read_image(path: str, max_pixels: int) -> Optional[np.ndarray]:
    """Decode ``path`` (BGR), or None when it cannot be read or decoded.

    Raises:
        ImageLoadError: the image decodes to more than ``max_pixels``.
    """
    try:
        with open(path, 'rb') as f:
            encoded = f.read()
    except OSError:
        return None
    check_decoded_size(encoded, max_pixels, f'image {path}')
    return cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)


def _filter_shard(image_dir: str, names: Sequence[str], detector: Callable,
                  rules: PersonFilterRules, out_dir: str, shard: str,
                  manifest: str, max_pixels: int) -> Counter:
    counts = Counter()
    lines, unreadable = [], []
    for name in names:
        try:
            image = _read_image(osp.join(image_dir, name), max_pixels)
        except ImageLoadError:
            counts['oversized image'] += 1
            unreadable.append(name)
            continue
        if image is None:
            counts['unreadable image'] += 1
            unreadable.append(name)
            continue
        counts['images'] += 1
        for k, detection in enumerate(detector(name, image)):
            counts['detections'] += 1
            reason = rules.reject_reason(detection)
            if reason:
                counts[f'rejected: {reason}'] += 1
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in detection.box)
            crop = image[max(y1, 0):y2, max(x1, 0):x2]
            # the source's extension stays in the name: p.jpg and p.png
            # in one folder give two crops
            crop_name = osp.join('crops', shard, f'{name}_{k}.png')
            os.makedirs(osp.dirname(osp.join(out_dir, crop_name)),
                        exist_ok=True)
            cv2.imwrite(osp.join(out_dir, crop_name), crop)
            counts['kept'] += 1
            lines.append(dict(id=crop_name, crop=crop_name, source=name,
                              box=[x1, y1, x2, y2],
                              score=detection.score))
    with open(manifest, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)
    with open(manifest[:-len('.jsonl')] + '.unreadable', 'w',
              encoding='utf-8') as f:
        f.writelines(name + '\n' for name in unreadable)
    return counts


def read_manifest(out_dir: str) -> List[dict]:
    """Every kept crop of stage 1, in shard order."""
    rows = []
    for path in sorted(glob.glob(osp.join(out_dir, 'manifest', '*.jsonl'))):
        rows += _read_jsonl(path)
    return rows


def run_caption_stage(out_dir: str,
                      captioner: Callable[[bytes, str], str],
                      templates: Sequence[str],
                      concurrency: int = 8,
                      seed: int = 0) -> dict:
    """Caption every crop twice (WebPerson's caption1 and caption2), each
    time guided by a template drawn for that crop and caption.

    Results are appended to ``captions.jsonl`` as each crop finishes, so a
    killed run loses at most the crops in flight; a re-run skips finished
    crops and retries the failed ones (``failures.jsonl`` keeps every
    failure with its error). Requests run ``concurrency`` at a time.
    """
    items = read_manifest(out_dir)
    results_path = osp.join(out_dir, 'captions.jsonl')
    failures_path = osp.join(out_dir, 'failures.jsonl')
    done = {row['id'] for row in _read_jsonl(results_path)}
    pending = [item for item in items if item['id'] not in done]
    lock = threading.Lock()
    failed = Counter()

    def caption(item: dict) -> dict:
        with open(osp.join(out_dir, item['crop']), 'rb') as f:
            image = f.read()
        drawn = [_template(templates, seed, item['id'], i) for i in (1, 2)]
        return dict(id=item['id'], caption1=captioner(image, drawn[0]),
                    caption2=captioner(image, drawn[1]),
                    template1=drawn[0], template2=drawn[1])

    progress = Progress(len(pending), 'captioning crops')
    with ThreadPoolExecutor(max(1, concurrency)) as pool, \
            open(results_path, 'a', encoding='utf-8') as results, \
            open(failures_path, 'a', encoding='utf-8') as failures:
        futures = {pool.submit(caption, item): item for item in pending}
        for future in as_completed(futures):
            with lock:
                try:
                    results.write(json.dumps(future.result()) + '\n')
                    results.flush()
                except Exception as err:  # recorded, retried by a re-run
                    failed[type(err).__name__] += 1
                    failures.write(json.dumps(
                        dict(id=futures[future]['id'], error=str(err))) +
                                   '\n')
                    failures.flush()
            progress.update()
    progress.close()
    captioned = {row['id'] for row in _read_jsonl(results_path)}
    report = dict(crops=len(items), captioned=len(captioned),
                  captioned_this_run=len(pending) - sum(failed.values()),
                  failed_this_run=dict(failed),
                  still_missing=len(items) - len(captioned))
    _write_json(osp.join(out_dir, 'caption_report.json'), report)
    return report


def _template(templates: Sequence[str], seed: int, item_id: str,
              which: int) -> str:
    """A template drawn for (crop, caption number): stable across runs."""
    key = zlib.crc32(f'{seed}:{item_id}:{which}'.encode())
    return templates[np.random.default_rng(key).integers(len(templates))]


def caption_problem(caption: str, min_words: int = 8) -> Optional[str]:
    """Why a caption is unusable (``'empty'``, ``'refusal'``,
    ``'truncated'``), or ``None``."""
    text = (caption or '').strip()
    if not text:
        return 'empty'
    if REFUSALS.search(text):
        return 'refusal'
    if len(text.split()) < min_words or text[-1] not in '.!?"\'':
        return 'truncated'
    return None


def _normalised(caption: str) -> str:
    return ' '.join(re.findall(r'\w+', caption.lower()))


def run_export_stage(out_dir: str,
                     rows_per_shard: int = 10000,
                     min_words: int = 8) -> dict:
    """Clean the captions and write the WebPerson parquet shards.

    A crop is dropped when a caption is empty, a refusal, truncated (fewer
    than ``min_words`` words or no final punctuation) or repeats a caption
    already kept (or its own other caption). Each reason is counted per
    caption. Writes ``data/train-XXXXX-of-YYYYY.parquet`` with ``image``
    (``{bytes, path}``), ``image_path``, ``caption1``, ``caption2``.
    """
    captions = {row['id']: row
                for row in _read_jsonl(osp.join(out_dir, 'captions.jsonl'))}
    items = read_manifest(out_dir)
    dropped: Dict[str, int] = Counter()
    seen = set()
    rows = []
    for item in items:
        row = captions.get(item['id'])
        if row is None:
            dropped['not captioned'] += 1
            continue
        texts = [row['caption1'], row['caption2']]
        problems = [caption_problem(t, min_words) for t in texts]
        keys = [_normalised(t or '') for t in texts]
        for i, key in enumerate(keys):
            if problems[i] is None and (key in seen or key in keys[:i]):
                problems[i] = 'duplicate'
        if any(problems):
            dropped.update(p for p in problems if p)
            continue
        seen.update(keys)
        with open(osp.join(out_dir, item['crop']), 'rb') as f:
            image = f.read()
        rows.append(dict(image=dict(bytes=image, path=item['crop']),
                         image_path=item['crop'],
                         caption1=texts[0].strip(),
                         caption2=texts[1].strip()))
    num_shards = _write_shards(osp.join(out_dir, 'data'), rows,
                               rows_per_shard)
    report = dict(crops=len(items), kept=len(rows),
                  dropped_captions=dict(dropped),
                  shards=num_shards)
    _write_json(osp.join(out_dir, 'export_report.json'), report)
    return report


def _write_shards(folder: str, rows: List[dict], rows_per_shard: int) -> int:
    """Write the parquet shards into a fresh ``folder + '.part'`` and swap
    it in: a kill leaves the previous shards (or none), never a mix.
    Returns the number of shards."""
    part_folder = folder + '.part'
    shutil.rmtree(part_folder, ignore_errors=True)
    os.makedirs(part_folder)
    num_shards = max(1, -(-len(rows) // rows_per_shard))
    for shard in range(num_shards):
        part = rows[shard * rows_per_shard:(shard + 1) * rows_per_shard]
        pq.write_table(
            pa.Table.from_pylist(part, schema=_SCHEMA),
            osp.join(part_folder,
                     f'train-{shard:05d}-of-{num_shards:05d}.parquet'),
            row_group_size=100)
    old_folder = folder + '.old'
    shutil.rmtree(old_folder, ignore_errors=True)
    if osp.exists(folder):
        os.replace(folder, old_folder)
    os.replace(part_folder, folder)
    shutil.rmtree(old_folder, ignore_errors=True)
    return num_shards


_SCHEMA = pa.schema([
    ('image', pa.struct([('bytes', pa.binary()), ('path', pa.string())])),
    ('image_path', pa.string()),
    ('caption1', pa.string()),
    ('caption2', pa.string()),
])
