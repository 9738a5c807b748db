"""Building WebPerson-style corpora on Ray Data: web image download,
person filtering, template-guided MLLM captioning, cleaning and export
(``tools/dataset_converters/build_webperson_corpus.py``,
``docs/webperson_pipeline.md``)."""
from .caption_stage import (CaptionBackend, RoundRobin, ServerCaptionBackend,
                            VLLMCaptionBackend, draw_template,
                            run_caption_stage)
from .captioners import (CaptionError, OpenAIChatCaptioner,
                         TransformersCaptioner)
from .download import run_download_stage
from .export_stage import caption_problem, run_export_stage
from .filter_stage import FilterOptions, run_filter_stage
from .filtering import (ContrastBoxDetector, Detection, PersonFilterRules,
                        PrecomputedDetector, UltralyticsDetector)
from .sharded import CORPUS_RUNTIME_ENV
from .templates import build_template_bank, load_template_bank, make_template
from .web_fetch import DownloadOptions

__all__ = [
    'Detection', 'PersonFilterRules', 'PrecomputedDetector',
    'UltralyticsDetector', 'ContrastBoxDetector', 'OpenAIChatCaptioner',
    'TransformersCaptioner', 'CaptionError', 'CaptionBackend',
    'ServerCaptionBackend', 'VLLMCaptionBackend', 'RoundRobin',
    'DownloadOptions', 'FilterOptions', 'run_download_stage',
    'run_filter_stage', 'run_caption_stage', 'run_export_stage',
    'draw_template', 'caption_problem', 'make_template',
    'build_template_bank', 'load_template_bank', 'CORPUS_RUNTIME_ENV'
]
