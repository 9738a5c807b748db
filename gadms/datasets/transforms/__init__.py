from .clip_norm import CLIP_MEAN, CLIP_STD
from .consensus_tokens import ConsensusTokens
from .erasing import NormalisedRandomErasing
from .formatting import PackTextPersonInputs
from .loading import (DEFAULT_MAX_PIXELS, ImageLoadError, LoadPersonImage,
                      check_decoded_size)
from .text import TokenizeCaption
from .token_annotation import AnnotateTokens, token_values
from .tokenizer import (EOT_TOKEN_ID, MASK_TOKEN_ID, PAD_TOKEN_ID,
                        SOT_TOKEN_ID, VOCAB_SIZE, CLIPTokenizer, get_tokenizer,
                        tokenises_to_nothing)

__all__ = [
    'DEFAULT_MAX_PIXELS', 'check_decoded_size',
    'CLIPTokenizer', 'get_tokenizer', 'tokenises_to_nothing',
    'TokenizeCaption', 'LoadPersonImage',
    'ImageLoadError', 'PackTextPersonInputs', 'PAD_TOKEN_ID', 'MASK_TOKEN_ID',
    'SOT_TOKEN_ID', 'EOT_TOKEN_ID', 'VOCAB_SIZE', 'NormalisedRandomErasing',
    'CLIP_MEAN', 'CLIP_STD', 'AnnotateTokens', 'token_values',
    'ConsensusTokens'
]
