"""The decoded-pixel cap of every image gadms decodes (datasets, gallery
folders, the corpus stages): checked from the encoded header, before any
decoding. A light module: Ray workers of the corpus stages import it
without the dataset stack."""
import io
import warnings

from PIL import Image

# 100 megapixels (300 MB as BGR) is far above any person photo; OpenCV's own
# cap is 2**30 pixels (3 GB), reachable from a 48 KB PNG
DEFAULT_MAX_PIXELS = 100_000_000


class ImageLoadError(OSError):
    """An image is missing or cannot be decoded."""


def check_decoded_size(img_bytes: bytes, max_pixels: int,
                       image: str) -> None:
    """Refuse an encoded image that would decode to more than
    ``max_pixels`` pixels, from its header alone (nothing is decoded).

    Formats whose header PIL cannot read are left to the decoder.

    Raises:
        ImageLoadError: naming the ``image`` (its description), the size
            and the cap.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(img_bytes)).size
    except Image.DecompressionBombError as err:  # beyond PIL's own cap
        raise ImageLoadError(f'{image} is too large to decode '
                             f'({err})') from err
    except Exception:  # not a header PIL knows: the decoder decides
        return
    if width * height > max_pixels:
        raise ImageLoadError(
            f'{image} decodes to {width} x {height} = '
            f'{width * height} pixels, over the cap of {max_pixels} '
            '(max_pixels)')
