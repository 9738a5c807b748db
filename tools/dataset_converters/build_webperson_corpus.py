"""Build a WebPerson-style corpus from web URL tables or your own images.

    # 0. download a COYO/LAION-style URL table (parquet: key, url, text):
    #    processes on this machine by default, a Ray cluster with --address
    python tools/dataset_converters/build_webperson_corpus.py download \
        coyo-parquet/ out/ --concurrency 8 --threads 128 [--address auto]
    # caption templates from benchmark captions (CUHK-PEDES etc.)
    python tools/dataset_converters/build_webperson_corpus.py templates \
        data/CUHK-PEDES/reid_raw.json templates.json --clusters 200
    # 1. person filtering of the downloaded images (or a folder of images)
    #    with YOLO pose weights on GPUs, or precomputed detections
    python tools/dataset_converters/build_webperson_corpus.py filter \
        out/ corpus/ --pose-weights yolo11x-pose.pt --gpus-per-actor 1
    # 2. captioning with OpenAI-compatible MLLM servers (e.g. vLLM)
    python tools/dataset_converters/build_webperson_corpus.py caption \
        corpus/ --templates templates.json \
        --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1 \
        --model Qwen/Qwen2.5-VL-7B-Instruct --actors 4 --concurrency 32
    # 3. cleaning, deduplication and parquet export, readable by WebPerson
    python tools/dataset_converters/build_webperson_corpus.py export corpus/

Every stage runs on Ray Data (local, or a cluster with --address), resumes
where it stopped and writes a report next to its output. See
docs/webperson_pipeline.md.
"""
import argparse
import json
import os
import sys
from functools import partial

from gadms.common.atomic import write_json
from gadms.common.image_limits import DEFAULT_MAX_PIXELS
from gadms.corpus import (CORPUS_RUNTIME_ENV, ContrastBoxDetector,
                          DownloadOptions, FilterOptions, PersonFilterRules,
                          PrecomputedDetector, ServerCaptionBackend,
                          TransformersCaptioner, UltralyticsDetector,
                          VLLMCaptionBackend, build_template_bank,
                          load_template_bank, run_caption_stage,
                          run_download_stage, run_export_stage,
                          run_filter_stage)
from gadms.corpus.caption_stage import openai_servers
from gadms.corpus.sharded import bound_driver_memory
from gadms.corpus.templates import embed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    stages = parser.add_subparsers(dest='stage', required=True)

    download = stages.add_parser('download', help='stage 0 (Ray Data)')
    download.add_argument('url_tables', help='parquet URL table(s): a '
                          'folder, a glob or a file with key, url, text')
    download.add_argument('out_dir')
    download.add_argument('--concurrency', type=int,
                          help='download tasks at a time, one CPU each '
                          '(default: the CPUs of this machine, or of the '
                          'Ray cluster)')
    download.add_argument('--threads', type=int, default=64,
                          help='requests in flight per task (asyncio)')
    download.add_argument('--partitions', type=int, default=16,
                          help='parts of the deduplicated URL table (the '
                          'unit of a task, and what a re-run skips when '
                          'finished)')
    download.add_argument('--timeout', type=float, default=10.0,
                          help='seconds for a whole request')
    download.add_argument('--retries', type=int, default=2)
    download.add_argument('--max-bytes', type=int, default=20 << 20)
    download.add_argument('--max-redirects', type=int, default=3)
    download.add_argument('--max-pixels', type=int,
                          default=DEFAULT_MAX_PIXELS)
    download.add_argument('--resize-max-side', type=int,
                          help='shrink larger images (default: originals)')
    download.add_argument('--address', default=os.environ.get('RAY_ADDRESS'),
                          help='Ray cluster to run the tasks on (default: '
                          'RAY_ADDRESS, else --concurrency processes on '
                          'this machine, without Ray)')

    templates = stages.add_parser('templates', help='build a template bank')
    templates.add_argument('captions', help='benchmark annotation JSON '
                           '(records with "captions") or a JSON list of str')
    templates.add_argument('out', help='template bank JSON to write')
    templates.add_argument('--clusters', type=int, default=200)
    templates.add_argument('--per-cluster', type=int, default=5)
    templates.add_argument('--seed', type=int, default=0)
    templates.add_argument(
        '--embed-with', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
        help='cluster with this gadms model\'s text encoder instead of '
        'the hashed bag of words')

    filtering = stages.add_parser('filter', help='stage 1 (Ray Data)')
    filtering.add_argument('source', help='a download output folder or a '
                           'folder of images')
    filtering.add_argument('out_dir')
    detector = filtering.add_mutually_exclusive_group(required=True)
    detector.add_argument('--pose-weights', help='ultralytics YOLO pose file')
    detector.add_argument('--detections', help='precomputed detections JSON')
    detector.add_argument('--contrast-detector', action='store_true',
                          help='boxes of regions that differ from a plain '
                          'background (synthetic scenes, tests)')
    filtering.add_argument('--device', default='cpu',
                           help='device of the YOLO model in each actor')
    filtering.add_argument('--actors', type=int, default=1,
                           help='detector actors')
    filtering.add_argument('--cpus-per-actor', type=float, default=0.5)
    filtering.add_argument('--gpus-per-actor', type=float, default=0)
    filtering.add_argument('--batch-size', type=int, default=16,
                           help='images per detector call')
    filtering.add_argument('--shard-size', type=int, default=1000,
                           help='images per shard of a folder input')
    filtering.add_argument('--shards-per-run', type=int, default=64)
    filtering.add_argument('--max-pixels', type=int,
                           default=DEFAULT_MAX_PIXELS,
                           help='skip (and list) images that decode to more '
                           'pixels than this')
    for name, value in vars(PersonFilterRules()).items():
        if not isinstance(value, bool):
            filtering.add_argument(f'--{name.replace("_", "-")}',
                                   type=type(value), default=value)
    filtering.add_argument('--allow-no-keypoints', action='store_true',
                           help='keep boxes without keypoints (box-only '
                           'detectors)')
    add_ray_args(filtering)

    caption = stages.add_parser('caption', help='stage 2 (Ray Data)')
    caption.add_argument('out_dir')
    caption.add_argument('--templates', required=True)
    backend = caption.add_mutually_exclusive_group(required=True)
    backend.add_argument('--base-url', action='append',
                         help='OpenAI-compatible server; repeat it to '
                         'spread the requests over several')
    backend.add_argument('--model-path', help='local transformers model, '
                         'loaded by each actor')
    backend.add_argument('--vllm-model', help='vLLM engines in the Ray '
                         'cluster (ray.data.llm; untested here)')
    caption.add_argument('--model', help='served model name (--base-url)')
    caption.add_argument('--api-key-env', default='OPENAI_API_KEY')
    caption.add_argument('--actors', type=int, default=1,
                         help='captioning actors (vLLM: engines)')
    caption.add_argument('--concurrency', type=int, default=8,
                         help='requests in flight per actor')
    caption.add_argument('--gpus-per-actor', type=float, default=0,
                         help='--model-path actors')
    caption.add_argument('--batch-size', type=int, default=16)
    caption.add_argument('--timeout', type=float, default=60)
    caption.add_argument('--retries', type=int, default=3)
    caption.add_argument('--backoff', type=float, default=1.0)
    caption.add_argument('--device', default='cpu')
    caption.add_argument('--seed', type=int, default=0)
    caption.add_argument('--shards-per-run', type=int, default=64,
                         help='shards per Ray Data pipeline; each shard is '
                         'committed as soon as its captions are back')
    caption.add_argument('--logprobs', action='store_true',
                         help='--base-url servers only: record each '
                         "caption's word probabilities from the answer's "
                         'token log-probabilities (export them with '
                         'export --word-confidences); a heuristic signal '
                         'of hallucinated words, not a guarantee')
    add_ray_args(caption)

    export = stages.add_parser('export', help='stage 3 (Ray Data)')
    export.add_argument('out_dir')
    export.add_argument('--min-words', type=int, default=8)
    export.add_argument('--buckets', type=int, default=16,
                        help='hash buckets of the caption deduplication '
                        '(tens to low hundreds: each bucket task reads every '
                        'shard file)')
    export.add_argument('--word-confidences', action='store_true',
                        help='also export the word confidences recorded by '
                        'caption --logprobs (columns caption1_word_'
                        'confidences, caption2_word_confidences)')
    add_ray_args(export)
    return parser.parse_args()


def add_ray_args(parser: argparse.ArgumentParser) -> None:
    """Where the Ray Data stages run."""
    parser.add_argument('--address', default=os.environ.get('RAY_ADDRESS'),
                        help='Ray cluster to join (default: RAY_ADDRESS, '
                        'else a local Ray on this machine)')
    parser.add_argument('--num-cpus', type=int,
                        help='CPUs of the local Ray (default: all)')
    parser.add_argument('--num-gpus', type=int,
                        help='GPUs of the local Ray (default: all)')


def init_ray(args: argparse.Namespace) -> None:
    """Start or join Ray; Ray Data's progress bars only on a terminal
    (in a pipe the log stays bounded)."""
    import ray
    from ray.data import DataContext

    bound_driver_memory()
    if args.address:
        ray.init(address=args.address, log_to_driver=False,
                 runtime_env=CORPUS_RUNTIME_ENV)
    else:
        # a local Ray's workers inherit this process's environment: set
        # there, the variables reach the workers Ray starts with the node
        # (a runtime_env restarts them first, half a second of a short run)
        os.environ.update(CORPUS_RUNTIME_ENV['env_vars'])
        # 'local': a new Ray on this machine, never a stale one that a
        # killed `ray start` left in /tmp/ray/ray_current_cluster
        ray.init(address='local', num_cpus=args.num_cpus,
                 num_gpus=args.num_gpus, include_dashboard=False,
                 log_to_driver=False)
    DataContext.get_current().enable_progress_bars = sys.stderr.isatty()


def read_captions(path: str) -> list:
    with open(path, encoding='utf-8') as f:
        content = json.load(f)
    if content and isinstance(content[0], dict):
        return [c for record in content for c in record['captions']]
    return content


def caption_backend(args: argparse.Namespace):
    if args.logprobs and not args.base_url:
        raise SystemExit('--logprobs needs --base-url (OpenAI-compatible '
                         'servers return token log-probabilities)')
    if args.vllm_model:
        return VLLMCaptionBackend(args.vllm_model, engines=args.actors,
                                  batch_size=args.batch_size)
    if args.base_url:
        if not args.model:
            raise SystemExit('--base-url needs --model')
        # the key is read here: workers on other nodes may not have it
        make = partial(openai_servers, args.base_url, model=args.model,
                       api_key=os.environ.get(args.api_key_env),
                       timeout=args.timeout, retries=args.retries,
                       backoff=args.backoff, logprobs=args.logprobs)
        return ServerCaptionBackend(make, args.actors, args.concurrency,
                                    args.batch_size)
    make = partial(TransformersCaptioner, args.model_path, args.device)
    return ServerCaptionBackend(make, args.actors, 1, args.batch_size,
                                cpus_per_actor=1,
                                gpus_per_actor=args.gpus_per_actor)


def filter_detector(args: argparse.Namespace):
    if args.detections:
        return PrecomputedDetector(args.detections)
    if args.contrast_detector:
        return ContrastBoxDetector()
    return UltralyticsDetector(args.pose_weights, args.device)


def main() -> None:
    args = parse_args()
    if args.stage not in ('templates', 'download') or (
            args.stage == 'download' and args.address):
        init_ray(args)
    if args.stage == 'download':
        options = DownloadOptions(
            timeout=args.timeout, max_bytes=args.max_bytes,
            retries=args.retries, max_redirects=args.max_redirects,
            max_pixels=args.max_pixels,
            resize_max_side=args.resize_max_side, threads=args.threads)
        if args.address:
            import ray
            concurrency = args.concurrency or int(
                ray.cluster_resources().get('CPU', 1))
        else:  # the pool's processes inherit the environment
            os.environ.update(CORPUS_RUNTIME_ENV['env_vars'])
            concurrency = args.concurrency or os.cpu_count()
        report = run_download_stage(
            args.url_tables, args.out_dir, options, concurrency,
            args.partitions, pool='ray' if args.address else 'local')
    elif args.stage == 'templates':
        embedder = embed
        if args.embed_with:
            from gadms.apis import TextPersonInferencer
            inferencer = TextPersonInferencer(*args.embed_with)
            embedder = lambda texts: inferencer.encode_texts(  # noqa: E731
                texts).numpy()
        bank = build_template_bank(
            read_captions(args.captions), args.clusters, args.per_cluster,
            args.seed, embedder=embedder)
        write_json(args.out, bank, indent=1)
        report = dict(templates=len(bank), out=args.out)
    elif args.stage == 'filter':
        rules = PersonFilterRules(
            require_keypoints=not args.allow_no_keypoints,
            **{name: getattr(args, name)
               for name, value in vars(PersonFilterRules()).items()
               if not isinstance(value, bool)})
        options = FilterOptions(
            rules=rules, max_pixels=args.max_pixels,
            shard_size=args.shard_size, batch_size=args.batch_size,
            actors=args.actors, cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor,
            shards_per_run=args.shards_per_run)
        report = run_filter_stage(args.source, filter_detector(args),
                                  args.out_dir, options)
    elif args.stage == 'caption':
        report = run_caption_stage(
            args.out_dir, caption_backend(args),
            load_template_bank(args.templates), args.seed,
            args.shards_per_run, readers=max(1, args.actors))
    else:
        report = run_export_stage(args.out_dir, args.min_words, args.buckets,
                                  args.word_confidences)
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
