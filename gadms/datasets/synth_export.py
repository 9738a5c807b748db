"""Write SynthPerson to disk in the published format of each benchmark, so
that every real loader can be exercised without the real data."""
import os
import os.path as osp
from typing import Callable, Dict, Iterator, Optional, Sequence

import cv2
import pyarrow as pa

from gadms.common.atomic import write_bytes, write_json, write_parquet
from gadms.common.formats import (WEBPERSON_JSON_NAME, WEBPERSON_SCHEMA,
                                  webperson_json_entry, webperson_parquet_row)
from gadms.common.progress import Progress
from .synth_person import SynthPerson

LAYOUT_SPLITS: Dict[str, Sequence[str]] = {
    'cuhk-pedes': ('train', 'val', 'test'),
    'icfg-pedes': ('train', 'test'),
    'rstpreid': ('train', 'val', 'test'),
    'webperson-json': ('train', ),
    'webperson-parquet': ('train', ),
}


def _images(splits: Sequence[str], synth_kwargs: dict) -> Iterator[dict]:
    """Data infos (with PNG bytes as ``png``) of every image of ``splits``,
    with a progress bar."""
    datasets = [
        SynthPerson(split=split, test_mode=True, **synth_kwargs)
        for split in splits
    ]
    progress = Progress(sum(len(d) for d in datasets), 'writing images')
    for dataset in datasets:
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            ok, png = cv2.imencode('.png', info['img'])
            if not ok:
                raise OSError(f'could not encode {info["img_path"]}')
            info['png'] = png.tobytes()
            yield info
            progress.update()
    progress.close()


def _write_file(path: str, content: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_bytes(path, content)


def _write_json(path: str, content) -> str:
    write_json(path, content)
    return path


def _processed_tokens(captions: Sequence[str]) -> list:
    return [c.lower().replace('.', ' ').replace(',', ' ').split()
            for c in captions]


def _record_list(out_dir: str, infos: Iterator[dict], ann_name: str,
                 make_record: Callable[[dict], dict]) -> str:
    records = []
    for info in infos:
        _write_file(osp.join(out_dir, 'imgs', info['img_path']), info['png'])
        records.append(make_record(info))
    return _write_json(osp.join(out_dir, ann_name), records)


def _two_captions(info: dict) -> tuple:
    if len(info['captions']) < 2:
        raise ValueError('WebPerson layouts need captions_per_image >= 2')
    return tuple(info['captions'][:2])


def _webperson_json(out_dir: str, infos: Iterator[dict]) -> str:
    entries = []
    for info in infos:
        _write_file(osp.join(out_dir, 'images', info['img_path']),
                    info['png'])
        entries.append(webperson_json_entry(info['img_path'],
                                            _two_captions(info)))
    return _write_json(osp.join(out_dir, WEBPERSON_JSON_NAME), entries)


def _webperson_parquet(out_dir: str, infos: Iterator[dict],
                       rows_per_shard: int, row_group_size: int) -> str:
    rows = [
        webperson_parquet_row(info['png'], info['img_path'],
                              _two_captions(info)) for info in infos
    ]
    folder = osp.join(out_dir, 'data')
    os.makedirs(folder, exist_ok=True)
    num_shards = -(-len(rows) // rows_per_shard)
    for shard in range(num_shards):
        table = pa.Table.from_pylist(
            rows[shard * rows_per_shard:(shard + 1) * rows_per_shard],
            schema=WEBPERSON_SCHEMA)
        write_parquet(
            table,
            osp.join(folder, f'train-{shard:05d}-of-{num_shards:05d}'
                     '.parquet'),
            row_group_size=row_group_size)
    return folder


def export_synth_person(out_dir: str,
                        layout: str,
                        splits: Optional[Sequence[str]] = None,
                        rows_per_shard: int = 1000,
                        row_group_size: int = 100,
                        **synth_kwargs) -> str:
    """Write SynthPerson in a benchmark's published layout.

    ============================  =========================================
    layout                        written under ``out_dir``
    ============================  =========================================
    ``cuhk-pedes``                ``reid_raw.json`` (``id`` = pid + 1),
                                  ``imgs/``
    ``icfg-pedes``                ``ICFG-PEDES.json`` (``id`` = pid),
                                  ``imgs/{train,test}/``
    ``rstpreid``                  ``data_captions.json`` (``id`` = pid + 1),
                                  ``imgs/``
    ``webperson-json``            ``annotations.json``, ``images/``
    ``webperson-parquet``         ``data/train-*.parquet`` (``image``
                                  struct, ``image_path``, ``caption1``,
                                  ``caption2``)
    ============================  =========================================

    Images are PNG, so a loader reading them back gets SynthPerson's pixels.

    Args:
        out_dir (str): Folder to create; becomes the ``data_root``.
        layout (str): One of ``LAYOUT_SPLITS``.
        splits (Sequence[str], optional): Splits to write; defaults to all
            the benchmark has.
        rows_per_shard (int): Parquet rows per shard.
        row_group_size (int): Parquet rows per row group.
        **synth_kwargs: :class:`SynthPerson` arguments (seed, sizes...).

    Returns:
        str: The annotation file (the shard folder for parquet).
    """
    if layout not in LAYOUT_SPLITS:
        raise ValueError(f'unknown layout {layout!r}, expected one of '
                         f'{sorted(LAYOUT_SPLITS)}')
    splits = tuple(splits or LAYOUT_SPLITS[layout])
    unknown = set(splits) - set(LAYOUT_SPLITS[layout])
    if unknown:
        raise ValueError(f'{layout} has no split {sorted(unknown)}')
    infos = _images(splits, synth_kwargs)
    if layout == 'cuhk-pedes':
        return _record_list(
            out_dir, infos, 'reid_raw.json', lambda info: dict(
                split=info['split'], captions=info['captions'],
                file_path=info['img_path'], id=info['pid'] + 1,
                processed_tokens=_processed_tokens(info['captions'])))
    if layout == 'icfg-pedes':
        return _record_list(
            out_dir, infos, 'ICFG-PEDES.json', lambda info: dict(
                split=info['split'], captions=info['captions'],
                file_path=info['img_path'], id=info['pid'],
                processed_tokens=_processed_tokens(info['captions'])))
    if layout == 'rstpreid':
        return _record_list(
            out_dir, infos, 'data_captions.json', lambda info: dict(
                id=info['pid'] + 1, img_path=info['img_path'],
                captions=info['captions'], split=info['split']))
    if layout == 'webperson-json':
        return _webperson_json(out_dir, infos)
    return _webperson_parquet(out_dir, infos, rows_per_shard,
                              row_group_size)
