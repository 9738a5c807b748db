"""Building WebPerson-style corpora: person filtering, template-guided MLLM
captioning, cleaning and export (``tools/dataset_converters/
build_webperson_corpus.py``, ``docs/webperson_pipeline.md``)."""
from .captioners import (CaptionError, OpenAIChatCaptioner,
                         TransformersCaptioner)
from .filtering import (Detection, PersonFilterRules, PrecomputedDetector,
                        UltralyticsDetector)
from .pipeline import (caption_problem, read_manifest, run_caption_stage,
                       run_export_stage, run_filter_stage)
from .templates import build_template_bank, load_template_bank, make_template

__all__ = [
    'Detection', 'PersonFilterRules', 'PrecomputedDetector',
    'UltralyticsDetector', 'OpenAIChatCaptioner', 'TransformersCaptioner',
    'CaptionError', 'run_filter_stage', 'run_caption_stage',
    'run_export_stage', 'read_manifest', 'caption_problem',
    'make_template', 'build_template_bank', 'load_template_bank'
]
