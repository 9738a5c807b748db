"""Stage 2 on Ray Data: two template-guided captions per kept crop.

Input: the filter stage's finished ``crops/<shard>/`` (rows with status
``kept``). Each crop gets two requests, ``which`` 1 and 2 (WebPerson's
``caption1`` and ``caption2``), each with a template drawn for (crop,
which) that stays the same across runs. Output::

    captions/<shard>/attempt-<n>/*.parquet   id, which, template,
                                             caption, error (null when
                                             the caption came back),
                                             word_confidences (with
                                             logprobs, else null)
    caption_report.json

A run writes a new attempt folder per shard, renamed into place as soon
as every caption of that shard has come back (the answers stream to the
driver, which holds only the unfinished shards'): the first attempt asks
for every caption of the shard, later ones only for the captions whose
requests failed in every earlier attempt. So a re-run skips finished
crops and retries the failed ones, and a killed driver loses only the
shards in flight.

Backends (:class:`CaptionBackend`): :class:`ServerCaptionBackend` sends
the requests to OpenAI-compatible servers from a pool of actors (several
base URLs share the load), :class:`VLLMCaptionBackend` runs vLLM engines
in-process through ``ray.data.llm``.
"""
import base64
import glob
import itertools
import os.path as osp
import threading
import time
import zlib
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Sequence, Set, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.common.atomic import write_json
from .captioners import PROMPT
from .filter_stage import crop_shard_folder, finished_crop_shards
from .sharded import (ACTOR_RETRY_ARGS, IO_CPUS, TASK_RETRY_ARGS,
                      commit_shards_as_they_finish, over_shards, parquet_files,
                      value_counts)

WORD_CONFIDENCES = pa.list_(pa.struct([('word', pa.string()),
                                       ('confidence', pa.float64())]))
CAPTION_SCHEMA = pa.schema([
    ('shard', pa.string()),
    ('id', pa.string()),          # the crop's id (filter stage)
    ('which', pa.int8()),         # 1 or 2: caption1 or caption2
    ('template', pa.string()),
    ('caption', pa.string()),
    ('error', pa.string()),       # 'ErrorType: message', null when ok
    # [(word, probability)] from the answer's token log-probabilities, when
    # the captioner returns them (OpenAIChatCaptioner(logprobs=True))
    ('word_confidences', WORD_CONFIDENCES),
])
# the request columns the backends receive: CAPTION_SCHEMA's first four
# and the crop's encoded bytes
REQUEST_COLUMNS = ('shard', 'id', 'which', 'template', 'image')


def draw_template(templates: Sequence[str], seed: int, crop_id: str,
                  which: int) -> str:
    """The template of caption ``which`` (1 or 2) of a crop.

    The crop's two templates are drawn together without replacement, so
    they differ whenever the bank has two or more (a greedy captioner
    would otherwise write the same caption twice, which the export drops);
    the draw is the same in every run and process (a CRC32 of seed and
    crop id seeds it).
    """
    if which not in (1, 2):
        raise ValueError(f'which must be 1 or 2, got {which!r}')
    if len(templates) < 2:
        return templates[0]
    key = zlib.crc32(f'{seed}:{crop_id}'.encode())
    pair = np.random.default_rng(key).choice(len(templates), size=2,
                                             replace=False)
    return templates[pair[which - 1]]


def caption_requests(batch: Dict[str, np.ndarray], files: Dict[str, list],
                     pending: Dict[str, Set[Tuple[str, int]]],
                     templates: Sequence[str], seed: int,
                     batch_size: int) -> Iterator[pa.Table]:
    """For the shard in ``batch`` (one row): a request per caption of each
    kept crop (``REQUEST_COLUMNS``), ``batch_size`` crops at a time. Only
    the ``(id, which)`` pairs in ``pending[shard]`` are asked for when the
    shard has an entry there (a retry); all of them otherwise."""
    shard = batch['shard'][0]
    wanted = pending.get(shard)
    for file in files[shard]:
        for chunk in pq.ParquetFile(file).iter_batches(
                batch_size, columns=['status', 'id', 'image']):
            chunk = pa.Table.from_batches([chunk])
            chunk = chunk.filter(pc.equal(chunk['status'], 'kept'))
            rows = {name: [] for name in REQUEST_COLUMNS}
            for crop_id, image in zip(chunk['id'].to_pylist(),
                                      chunk['image'].to_pylist()):
                for which in (1, 2):
                    if wanted is not None and (crop_id, which) not in wanted:
                        continue
                    for name, value in zip(REQUEST_COLUMNS, (
                            shard, crop_id, which,
                            draw_template(templates, seed, crop_id, which),
                            image)):
                        rows[name].append(value)
            if rows['id']:
                yield pa.table(rows, schema=pa.schema(
                    list(CAPTION_SCHEMA)[:4] + [('image', pa.binary())]))


class CaptionBackend(ABC):
    """Turns a dataset of requests (``REQUEST_COLUMNS``) into a dataset of
    ``CAPTION_SCHEMA`` rows: every request answered, failures with their
    ``error`` rather than raised."""

    @abstractmethod
    def caption(self, requests):
        """``requests``: a Ray Dataset; returns the answered Dataset."""


class CaptionRequests:
    """The captioning actor: answers a batch of requests with ``threads``
    of them in flight through ``make_captioner()`` (built once per actor),
    a callable ``(image bytes, template) -> caption`` or ``-> (caption,
    word_confidences)``."""

    def __init__(self, make_captioner: Callable[[], Callable],
                 threads: int) -> None:
        self.captioner = make_captioner()
        self.pool = ThreadPoolExecutor(max(1, threads))

    def _answer(self, image: bytes, template: str) -> tuple:
        """``(caption, error, word confidences)``, one of the first two
        None."""
        try:
            answer = self.captioner(image, template)
        except Exception as err:  # recorded in the row, retried by a re-run
            return None, f'{type(err).__name__}: {err}', None
        caption, words = answer if isinstance(answer, tuple) else (answer,
                                                                  None)
        return caption, None, words and [
            dict(word=word, confidence=p) for word, p in words]

    def __call__(self, batch: Dict[str, np.ndarray]) -> pa.Table:
        answers = list(self.pool.map(self._answer, batch['image'],
                                     batch['template']))
        columns = {name: list(batch[name])
                   for name in CAPTION_SCHEMA.names[:4]}
        for k, name in enumerate(('caption', 'error', 'word_confidences')):
            columns[name] = [a[k] for a in answers]
        return pa.Table.from_pydict(columns, schema=CAPTION_SCHEMA)


@dataclass
class ServerCaptionBackend(CaptionBackend):
    """Captions from a pool of ``actors`` actors, each with ``threads``
    requests in flight (at most ``actors * threads`` at once), through
    the captioner ``make_captioner()`` builds in each actor (e.g. a
    :class:`RoundRobin` over :class:`OpenAIChatCaptioner` s, one per
    server, or a local model). An actor asks Ray for ``cpus_per_actor``
    (a quarter CPU: server requests wait on the network) and
    ``gpus_per_actor`` (a local model on a GPU)."""

    make_captioner: Callable[[], Callable]
    actors: int = 1
    threads: int = 8
    batch_size: int = 16
    cpus_per_actor: float = IO_CPUS
    gpus_per_actor: float = 0

    def caption(self, requests):
        import ray.data
        return requests.map_batches(
            CaptionRequests, fn_constructor_kwargs=dict(
                make_captioner=self.make_captioner, threads=self.threads),
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            batch_size=self.batch_size, num_cpus=self.cpus_per_actor,
            num_gpus=self.gpus_per_actor, **ACTOR_RETRY_ARGS)


class RoundRobin:
    """A captioner that sends each request to the next of ``captioners``
    (one per server), so that several servers share the load evenly."""

    def __init__(self, captioners: Sequence[Callable]) -> None:
        self.captioners = list(captioners)
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def __call__(self, image: bytes, template: str) -> str:
        with self._lock:
            turn = next(self._turn)
        return self.captioners[turn % len(self.captioners)](image, template)


def openai_servers(base_urls: Sequence[str], **kwargs) -> RoundRobin:
    """An :class:`OpenAIChatCaptioner` per server (``kwargs`` go to each),
    taking turns; pass ``functools.partial(openai_servers, urls, ...)`` as
    ``make_captioner``."""
    from .captioners import OpenAIChatCaptioner
    return RoundRobin([OpenAIChatCaptioner(url, **kwargs)
                       for url in base_urls])


def vllm_request(row: dict, max_tokens: int, temperature: float) -> dict:
    """A request row -> ``ray.data.llm`` chat input (``messages`` with the
    crop as a data URL, ``sampling_params``); the request's columns ride
    along for :func:`vllm_answer`."""
    data_url = 'data:image/png;base64,' + base64.b64encode(
        row['image']).decode()
    return dict(
        messages=[dict(role='user', content=[
            dict(type='text', text=PROMPT.format(template=row['template'])),
            dict(type='image_url', image_url=dict(url=data_url)),
        ])],
        sampling_params=dict(max_tokens=max_tokens, temperature=temperature),
        **{name: row[name] for name in CAPTION_SCHEMA.names[:4]})


def vllm_answer(row: dict) -> dict:
    """A ``ray.data.llm`` output row -> a ``CAPTION_SCHEMA`` row (a failed
    inference keeps its error, as a server failure does)."""
    error = row.get('__inference_error__') or None
    return dict({name: row[name] for name in CAPTION_SCHEMA.names[:4]},
                caption=None if error else row['generated_text'],
                error=f'InferenceError: {error}' if error else None,
                word_confidences=None)


@dataclass
class VLLMCaptionBackend(CaptionBackend):
    """In-process vLLM engines on the cluster's GPUs (``ray.data.llm``,
    ``vLLMEngineProcessorConfig``), e.g. Qwen2.5-VL. Needs vLLM and GPUs;
    untested here (docs/webperson_pipeline.md gives the configuration).

    Args:
        model_source (str): Model name or local folder.
        engines (int): vLLM engines (one GPU each by default).
        batch_size (int): Requests per engine call.
        engine_kwargs (dict): Passed to the vLLM engine.
    """

    model_source: str
    engines: int = 1
    batch_size: int = 32
    max_tokens: int = 160
    temperature: float = 0.7
    engine_kwargs: dict = field(default_factory=lambda: dict(
        max_model_len=8192, limit_mm_per_prompt=dict(image=1)))

    def processor(self):
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
        config = vLLMEngineProcessorConfig(
            model_source=self.model_source, engine_kwargs=self.engine_kwargs,
            concurrency=self.engines, batch_size=self.batch_size,
            prepare_multimodal_stage=True, should_continue_on_error=True)
        return build_processor(
            config,
            preprocess=lambda row: vllm_request(row, self.max_tokens,
                                                self.temperature),
            postprocess=vllm_answer)

    def caption(self, requests):
        return self.processor()(requests)


def caption_attempts(out_dir: str, shard: str) -> List[str]:
    return sorted(glob.glob(osp.join(out_dir, 'captions', shard,
                                     'attempt-*')))


def missing_captions(out_dir: str, shard: str) -> Set[Tuple[str, int]]:
    """``(id, which)`` of the captions of ``shard`` whose request failed in
    every attempt so far."""
    failed, answered = set(), set()
    for attempt in caption_attempts(out_dir, shard):
        for file in parquet_files(attempt, depth=0):
            table = pq.read_table(file, columns=['id', 'which', 'error'],
                                  partitioning=None)
            ok = pc.is_null(table['error'])
            for target, mask in ((answered, ok), (failed, pc.invert(ok))):
                part = table.filter(mask)
                target.update(zip(part['id'].to_pylist(),
                                  part['which'].to_pylist()))
    return failed - answered


def answered_captions(out_dir: str) -> Iterator[dict]:
    """Every answered caption (``id``, ``which``, ``template``,
    ``caption``) of every attempt, one file in memory at a time."""
    for shard in finished_crop_shards(out_dir):
        for attempt in caption_attempts(out_dir, shard):
            for file in parquet_files(attempt, depth=0):
                table = pq.read_table(file, partitioning=None)
                yield from table.filter(pc.is_null(table['error'])).select(
                    ['id', 'which', 'template', 'caption']).to_pylist()


def _kept_crop_count(out_dir: str, shard: str) -> int:
    """Crops of ``shard`` that the filter kept (read from its status
    column alone)."""
    return sum(
        pc.sum(pc.equal(pq.read_table(f, columns=['status'],
                                      partitioning=None)['status'],
                        'kept')).as_py() or 0
        for f in parquet_files(crop_shard_folder(out_dir, shard), depth=0))


def run_caption_stage(out_dir: str, backend: CaptionBackend,
                      templates: Sequence[str], seed: int = 0,
                      shards_per_run: int = 64, readers: int = 2) -> dict:
    """Caption the crops of every finished filter shard (layout and
    resumption in the module docstring). Returns (and writes) the
    report.

    Args:
        out_dir (str): The corpus folder of the filter stage.
        backend (CaptionBackend): Who answers the requests.
        templates (list[str]): Caption templates.
        seed (int): Seeds the template drawn for each caption.
        shards_per_run (int): Shards per Ray Data pipeline; each shard's
            captions are committed as soon as they are all answered, so a
            killed driver loses only the shards in flight.
        readers (int): Tasks reading crops into requests at a time.
    """
    import ray.data
    shards = finished_crop_shards(out_dir)
    pending: Dict[str, Set[Tuple[str, int]]] = {}
    new = []
    for shard in shards:
        if not caption_attempts(out_dir, shard):
            new.append(shard)
        else:
            missing = missing_captions(out_dir, shard)
            if missing:
                pending[shard] = missing
    todo = new + sorted(pending)
    attempt = {s: len(caption_attempts(out_dir, s)) for s in todo}

    def build(group: List[str]):
        requests = over_shards(group).map_batches(
            caption_requests, batch_size=1, num_cpus=IO_CPUS,
            compute=ray.data.TaskPoolStrategy(size=readers),
            fn_kwargs=dict(
                files={s: parquet_files(crop_shard_folder(out_dir, s),
                                        depth=0) for s in group},
                pending={s: pending[s] for s in group if s in pending},
                templates=list(templates), seed=seed, batch_size=16),
            **TASK_RETRY_ARGS)
        return backend.caption(requests)

    # a request per caption: two per kept crop, or the ones still missing
    expected = {s: len(pending[s]) if s in pending else
                2 * _kept_crop_count(out_dir, s) for s in todo}
    start = time.monotonic()
    commit_shards_as_they_finish(
        todo, build, lambda s: osp.join(out_dir, 'captions', s,
                                        f'attempt-{attempt[s]:03d}'),
        expected, CAPTION_SCHEMA, shards_per_run)
    seconds = time.monotonic() - start
    this_run = [f for s in todo for f in parquet_files(
        caption_attempts(out_dir, s)[-1], depth=0)]
    asked = sum(pq.read_metadata(f).num_rows for f in this_run)
    errors = value_counts(this_run, 'error')
    report = caption_report(out_dir, shards)
    report.update(
        requests_this_run=asked,
        failed_this_run=_error_types(errors),
        seconds_this_run=round(seconds, 2),
        captions_per_s_this_run=round(asked / seconds, 2)
        if todo and seconds else None)
    write_json(osp.join(out_dir, 'caption_report.json'), report, indent=1)
    return report


def _error_types(errors: Dict[str, int]) -> Dict[str, int]:
    """Failure counts by error type (the text before the first colon)."""
    counts: Dict[str, int] = {}
    for error, count in errors.items():
        if error is not None:
            kind = error.split(':', 1)[0]
            counts[kind] = counts.get(kind, 0) + count
    return counts


def caption_report(out_dir: str, shards: Sequence[str]) -> dict:
    """Crops, captions answered and still missing over the finished filter
    shards (every crop has two captions: ``2 * crops == captions +
    still_missing + 2 * crops of uncaptioned shards``)."""
    kept = value_counts(parquet_files(osp.join(out_dir, 'crops')),
                        'status').get('kept', 0)
    files = [f for s in shards for a in caption_attempts(out_dir, s)
             for f in parquet_files(a, depth=0)]
    answered = value_counts(files, 'error').get(None, 0)
    return dict(crops=kept, captions=answered,
                still_missing=sum(len(missing_captions(out_dir, s))
                                  for s in shards),
                uncaptioned_shards=sum(not caption_attempts(out_dir, s)
                                       for s in shards))
