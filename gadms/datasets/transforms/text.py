from mmcv.transforms import BaseTransform

from gadms.registry import TRANSFORMS
from .tokenizer import get_tokenizer


class CaptionTokensTransform(BaseTransform):
    """Base of the transforms that work on a sample's captions as rows of
    ``context_length`` CLIP tokens (``TokenizeCaption``,
    ``AnnotateTokens``).

    Args:
        context_length (int): Tokens per caption. Defaults to 77.
    """

    def __init__(self, context_length: int = 77) -> None:
        self.context_length = context_length

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}'
                f'(context_length={self.context_length})')


@TRANSFORMS.register_module()
class TokenizeCaption(CaptionTokensTransform):
    """Tokenise the captions of a sample with the CLIP BPE tokenizer.

    **Required Keys:** ``captions`` (list of str, one for a training sample,
    all captions of the image for a test sample).

    **Added Keys:** ``text_ids`` (np.ndarray int64 ``[N, context_length]``):
    ``[SOT, ..., EOT]`` then padding 0; id 49405 is reserved for ``[MASK]``
    and never produced from text.

    Args:
        context_length (int): Tokens per caption. Defaults to 77.
    """

    def transform(self, results: dict) -> dict:
        captions = results['captions']
        if isinstance(captions, str) or not captions:
            raise ValueError(
                f'"captions" must be a non-empty list of strings, got '
                f'{captions!r} (image {results.get("img_path")})')
        results['text_ids'] = get_tokenizer(self.context_length)(captions)
        return results
