"""Stage 1 data: a WebPerson-style corpus built by gadms's corpus pipeline.

Scenes hold one SynthPerson pedestrian each (plus detections that the
WebPerson rules must reject); ``run_filter_stage`` crops the people,
``run_caption_stage`` captions every crop twice with
:class:`SimulatedMLLMCaptioner`, ``run_export_stage`` cleans and writes the
parquet shards. The captioner knows each crop's true attributes and makes
the errors MLLM captioners make, recording where it put them, so the
token-score diagnostic knows which tokens are noise.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import re
import sys
import zlib
from functools import partial
from typing import Dict, List, Tuple

import cv2
import numpy as np
from ray import cloudpickle

from gadms.corpus import (CORPUS_RUNTIME_ENV, FilterOptions,
                          PrecomputedDetector, ServerCaptionBackend,
                          run_caption_stage, run_export_stage,
                          run_filter_stage)
from gadms.corpus.caption_stage import answered_captions
from gadms.corpus.filter_stage import kept_crops
from gadms.datasets import SynthPerson
from gadms.datasets.base import TextPersonDataset
from gadms.datasets.synth.attributes import COLOURS, PersonAttributes
from gadms.datasets.synth.captions import (COLOUR_WORDS, LOWER_SYNONYMS,
                                           NOISE_CLAUSES, PRONOUNS,
                                           UPPER_SYNONYMS, generate_captions)

BACKGROUND_CLAUSES = NOISE_CLAUSES + (
    'The street is lined with small shops.',
    'The sky looks bright and clear.',
    'A bicycle leans against the wall nearby.',
)
HALLUCINATIONS = (
    '{he} is holding a black umbrella.',
    '{he} wears dark sunglasses.',
    '{he} is talking on a phone.',
    'A small dog walks next to {him}.',
    '{he} wears a red scarf around {his} neck.',
    '{he} has a silver watch on {his} wrist.',
)
OBJECT_PRONOUNS = {'he': 'him', 'she': 'her'}
# probability of each error per caption; repeat_rate: the share of wrong
# colour words that every caption of the image repeats (see
# SimulatedMLLMCaptioner)
DEFAULT_ERRORS = dict(background=0.5, hallucination=0.2, wrong_colour=0.15,
                      repetition=0.1, truncation=0.04, repeat_rate=0.0)
NOISE_KINDS = ('background', 'hallucination', 'wrong_colour', 'repetition')
SCENE_SIZE = (300, 200)  # (height, width)
PERSON_SIZE = (240, 96)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class SimulatedMLLMCaptioner:
    """A deterministic stand-in for an MLLM captioner (stage 2 backend).

    Writes a correct caption of the crop's person from its true attributes
    (SynthPerson's phrasing), then, each with its probability in
    ``errors``: swaps a colour word for a wrong one, adds a hallucinated
    object sentence, adds an irrelevant background sentence, repeats a
    sentence, or stops mid-sentence (which the export stage drops as
    truncated). The result depends only on the image and the template.

    Correlated hallucinations (``repeat_rate`` r): a real MLLM can repeat
    its own mistake in both captions of a crop. With probability
    ``wrong_colour * r`` an image has a *shared* mistake (its upper or
    lower garment given one wrong colour, drawn from the image alone) that
    every caption of it states; otherwise each caption swaps a colour of
    its own with probability ``wrong_colour (1 - r) / (1 - wrong_colour
    r)``. Each caption is still wrong with probability ``wrong_colour``,
    and a wrong caption's mistake is its sibling's too with probability r.

    Args:
        attributes (dict): sha1 of the crop's PNG bytes -> the person's
            attributes (``PersonAttributes.to_dict()``).
        errors (dict): Probability of each error (see DEFAULT_ERRORS).

    ``spans[(sha1, caption)]`` lists the ``(kind, start, end)`` character
    spans of the injected noise of every caption returned.
    """

    def __init__(self, attributes: Dict[str, dict],
                 errors: Dict[str, float] = DEFAULT_ERRORS) -> None:
        self.attributes = attributes
        self.errors = dict(DEFAULT_ERRORS, **errors)
        self.spans: Dict[Tuple[str, str], List[Tuple[str, int, int]]] = {}

    def __call__(self, image: bytes, template: str) -> str:
        sha = _sha1(image)
        attrs = PersonAttributes(**self.attributes[sha])
        rng = np.random.default_rng(zlib.crc32(f'{sha}:{template}'.encode()))
        clean = generate_captions(attrs, rng)[0]['caption']
        # segments: (text, kind, wrong word span); kind None for a correct
        # sentence
        segments = [(s, None, None) for s in re.split(r'(?<=\.) ', clean)]
        shared, own_rate = self._shared_mistake(sha, attrs)
        if shared is not None:
            self._state_mistake(segments, *shared)
        elif rng.random() < own_rate:
            self._swap_colour(segments, rng)
        he, his = PRONOUNS[attrs.gender]
        if rng.random() < self.errors['hallucination']:
            sentence = HALLUCINATIONS[rng.integers(len(HALLUCINATIONS))]
            sentence = sentence.format(he=he, his=his,
                                       him=OBJECT_PRONOUNS[he])
            segments.insert(int(rng.integers(1, len(segments) + 1)),
                            (sentence[0].upper() + sentence[1:],
                             'hallucination', None))
        if rng.random() < self.errors['background']:
            clause = BACKGROUND_CLAUSES[rng.integers(len(BACKGROUND_CLAUSES))]
            position = 0 if rng.random() < 0.3 else len(segments)
            segments.insert(position, (clause, 'background', None))
        if rng.random() < self.errors['repetition']:
            clean_ones = [text for text, kind, _ in segments if kind is None]
            segments.append((clean_ones[rng.integers(len(clean_ones))],
                             'repetition', None))
        caption, spans = self._join(segments)
        if rng.random() < self.errors['truncation']:
            words = caption.split(' ')
            caption = ' '.join(words[:int(rng.integers(3, len(words)))])
            caption = caption.rstrip('.')
            spans = [(kind, start, min(end, len(caption)))
                     for kind, start, end in spans if start < len(caption)]
        self.spans[(sha, caption)] = spans
        return caption

    def _shared_mistake(self, sha: str, attrs: PersonAttributes) -> tuple:
        """(the image's shared mistake or None, the rate of a caption's own
        colour swap): a shared mistake is ``(true colour, wrong colour,
        garment words)``, drawn from the image alone."""
        rate, repeat = self.errors['wrong_colour'], self.errors['repeat_rate']
        if not repeat:
            return None, rate
        image_rng = np.random.default_rng([zlib.crc32(sha.encode()), 35])
        if image_rng.random() >= rate * repeat:
            return None, rate * (1 - repeat) / (1 - rate * repeat)
        if image_rng.random() < 0.5:
            true, kinds = attrs.upper_colour, UPPER_SYNONYMS[attrs.upper_type]
        else:
            true, kinds = attrs.lower_colour, LOWER_SYNONYMS[attrs.lower_type]
        wrong = [c for c in COLOURS if c != true]
        return (true, wrong[image_rng.integers(len(wrong))], kinds), rate

    @staticmethod
    def _state_mistake(segments: list, true: str, wrong: str,
                       kinds: tuple) -> None:
        """Write ``wrong`` for the first ``true`` colour word that
        describes a garment named by one of ``kinds`` (within two words),
        noting its span."""
        pattern = re.compile(
            rf'\b{true}\b(?=\s+(?:\S+\s+){{0,2}}?(?:'
            + '|'.join(map(re.escape, kinds)) + r')\b)')
        for index, (text, kind, _) in enumerate(segments):
            match = pattern.search(text) if kind is None else None
            if match:
                segments[index] = (
                    text[:match.start()] + wrong + text[match.end():], None,
                    (match.start(), match.start() + len(wrong)))
                return

    @staticmethod
    def _swap_colour(segments: list, rng: np.random.Generator) -> None:
        """Replace one colour word of a correct sentence by another colour
        and note its span in that segment."""
        pattern = r'\b(' + '|'.join(COLOUR_WORDS) + r')\b'
        found = [(i, m) for i, (text, _, _) in enumerate(segments)
                 for m in re.finditer(pattern, text)]
        if not found:
            return
        index, match = found[rng.integers(len(found))]
        colour = [c for c in COLOURS if c != match.group(1)]
        colour = colour[rng.integers(len(colour))]
        text = segments[index][0]
        segments[index] = (text[:match.start()] + colour +
                           text[match.end():], None,
                           (match.start(), match.start() + len(colour)))

    @staticmethod
    def _join(segments: list) -> Tuple[str, list]:
        spans, parts, offset = [], [], 0
        for text, kind, wrong in segments:
            if kind is not None:
                spans.append((kind, offset, offset + len(text)))
            if wrong is not None:
                spans.append(('wrong_colour', offset + wrong[0],
                              offset + wrong[1]))
            parts.append(text)
            offset += len(text) + 1
        return ' '.join(parts), spans


def _keypoints() -> list:
    return [[0.0, 0.0, 0.9] for _ in range(17)]


def _people(num_scenes: int, seed: int) -> SynthPerson:
    """The scenes' pedestrians: one SynthPerson identity per scene."""
    return SynthPerson(split='train', image_size=PERSON_SIZE, seed=seed,
                       num_identities=dict(train=num_scenes, val=1, test=1),
                       images_per_identity=1, captions_per_image=1)


def _scene_name(index: int) -> str:
    return f'scene_{index:06d}.png'


def draw_scenes(out_dir: str, num_scenes: int, seed: int) -> None:
    """Write ``num_scenes`` scene images (one person each) and their
    detections (``detections.json``)."""
    people = _people(num_scenes, seed)
    images = osp.join(out_dir, 'scenes')
    os.makedirs(images, exist_ok=True)
    detections = {}
    rng = np.random.default_rng([seed, 7])
    for index in range(num_scenes):
        scene = rng.normal(110, 25, (*SCENE_SIZE, 3)).clip(0, 255).astype(
            np.uint8)
        top = int(rng.integers(0, SCENE_SIZE[0] - PERSON_SIZE[0]))
        left = int(rng.integers(0, SCENE_SIZE[1] - PERSON_SIZE[1]))
        scene[top:top + PERSON_SIZE[0], left:left + PERSON_SIZE[1]] = \
            people.get_data_info(index)['img']
        cv2.imwrite(osp.join(images, _scene_name(index)), scene)
        box = [left, top, left + PERSON_SIZE[1], top + PERSON_SIZE[0]]
        found = [dict(box=box, score=float(rng.uniform(0.86, 0.99)),
                      keypoints=_keypoints())]
        if rng.random() < 0.3:  # a far-away person the rules reject
            found.append(dict(box=[0, 0, 30, 70], score=0.9,
                              keypoints=_keypoints()))
        if rng.random() < 0.05:  # a doubtful detection of the person
            found[0]['score'] = 0.6
        detections[_scene_name(index)] = found
    with open(osp.join(out_dir, 'detections.json'), 'w') as f:
        json.dump(detections, f)


def corpus_captioner(out_dir: str, num_scenes: int, seed: int,
                     errors: Dict[str, float] = DEFAULT_ERRORS
                     ) -> SimulatedMLLMCaptioner:
    """The simulated captioner of the crops that stage 1 kept: each crop's
    PNG bytes mapped to the attributes of its scene's person."""
    people = _people(num_scenes, seed)
    # the records alone, without drawing the pictures again
    attributes = {
        _scene_name(index): TextPersonDataset.get_data_info(
            people, index)['attributes'] for index in range(num_scenes)}
    by_crop = {_sha1(crop['image']): attributes[crop['source']]
               for crop in kept_crops(out_dir, ('source', 'image'))}
    return SimulatedMLLMCaptioner(by_crop, errors)


def build_corpus(out_dir: str, num_scenes: int, seed: int = 1,
                 errors: Dict[str, float] = DEFAULT_ERRORS) -> dict:
    """Scenes -> filter -> simulated captioning -> export, under
    ``out_dir``, on a local Ray started for it (unless one is running);
    writes ``noise_spans.json`` (image path -> caption -> spans) and
    returns the three stages' reports."""
    import ray
    started = not ray.is_initialized()
    if started:
        ray.init(address='local', include_dashboard=False,
                 log_to_driver=False, configure_logging=False,
                 runtime_env=CORPUS_RUNTIME_ENV)
    try:
        return _build_corpus(out_dir, num_scenes, seed, errors)
    finally:
        if started:
            ray.shutdown()


def _build_corpus(out_dir: str, num_scenes: int, seed: int,
                  errors: Dict[str, float]) -> dict:
    draw_scenes(out_dir, num_scenes, seed)
    filtered = run_filter_stage(
        osp.join(out_dir, 'scenes'),
        PrecomputedDetector(osp.join(out_dir, 'detections.json')), out_dir,
        FilterOptions(shard_size=max(1, num_scenes // 4)))
    captioner = corpus_captioner(out_dir, num_scenes, seed, errors)
    # distinct templates give distinct captions (an MLLM samples anew)
    templates = [f'style {k}' for k in range(200)]
    # Ray workers cannot import this benchmark module: send it by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    captioned = run_caption_stage(out_dir, ServerCaptionBackend(
        partial(_same, captioner), threads=1), templates, seed=seed)
    exported = run_export_stage(out_dir)
    write_noise_spans(out_dir, captioner)
    return dict(filter=filtered, caption=captioned, export=exported)


def annotate_corpus(out_dir: str) -> None:
    """Add ``caption1_noise_spans`` and ``caption2_noise_spans`` (``[[start,
    end], ...]`` of every kind of injected noise) from ``noise_spans.json``
    to the exported shards under ``data/``, each rewritten atomically; the
    oracle arms read them (``AnnotateTokens``, ``AnnotatedTokenScorer``).
    Shards that have them are left alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    with open(osp.join(out_dir, 'noise_spans.json')) as f:
        spans = json.load(f)
    spans_type = pa.list_(pa.list_(pa.int64()))
    for shard in sorted(glob.glob(osp.join(out_dir, 'data', '*.parquet'))):
        table = pq.read_table(shard)
        if 'caption1_noise_spans' in table.column_names:
            continue
        paths = table['image_path'].to_pylist()
        for field in ('caption1', 'caption2'):
            column = []
            for path, caption in zip(paths, table[field].to_pylist()):
                known = spans.get(path, {})
                if caption not in known:
                    raise RuntimeError(f'{shard}: no noise spans recorded '
                                       f'for {path} {field} {caption!r}')
                column.append([[start, end]
                               for _, start, end in known[caption]])
            table = table.append_column(f'{field}_noise_spans',
                                        pa.array(column, spans_type))
        pq.write_table(table, shard + '.part')
        os.replace(shard + '.part', shard)


def _same(captioner: SimulatedMLLMCaptioner) -> SimulatedMLLMCaptioner:
    return captioner


def write_noise_spans(out_dir: str,
                      captioner: SimulatedMLLMCaptioner) -> None:
    """``noise_spans.json``: crop path (the exported ``image_path``) ->
    caption -> noise spans, for every answered caption (the captioner is
    deterministic, so each caption is written again here from its crop and
    template; a resumed caption stage loses nothing)."""
    crops = {crop['id']: crop['image']
             for crop in kept_crops(out_dir, ('id', 'image'))}
    spans = {}
    for row in answered_captions(out_dir):
        image = crops[row['id']]
        caption = captioner(image, row['template'])
        if caption != row['caption']:
            raise RuntimeError(f'captioner is not deterministic for '
                               f'{row["id"]}')
        spans.setdefault(row['id'], {})[caption.strip()] = \
            captioner.spans[(_sha1(image), caption)]
    with open(osp.join(out_dir, 'noise_spans.json.part'), 'w') as f:
        json.dump(spans, f)
    os.replace(osp.join(out_dir, 'noise_spans.json.part'),
               osp.join(out_dir, 'noise_spans.json'))
