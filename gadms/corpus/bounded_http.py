"""HTTP answers read with a deadline for the whole answer and a size cap.

A socket timeout only bounds each read: a server that drips one byte a
second never trips it. :func:`read_bounded` checks a wall-clock deadline
between reads and refuses an answer over ``max_bytes``; the captioner (an
MLLM server's JSON) reads through it. The downloader (asyncio) bounds its
answers itself (:mod:`~gadms.corpus.web_fetch`) and refuses them with the
same :class:`AnswerTooLarge`.
"""
import http.client
import time


class AnswerTooLarge(ValueError):
    """An answer longer than the reader's cap."""


def read_bounded(response: http.client.HTTPResponse, deadline: float,
                 max_bytes: int) -> bytes:
    """The whole body of ``response``, read before ``deadline`` (a
    ``time.monotonic()`` value) and at most ``max_bytes`` long.

    Raises:
        TimeoutError: the answer was not complete by the deadline.
        AnswerTooLarge: it is (or announces it will be) longer than
            ``max_bytes``.
        http.client.IncompleteRead: it ended before its Content-Length.
    """
    expected = response.getheader('Content-Length')
    if expected is not None and expected.isdigit() and \
            int(expected) > max_bytes:
        raise AnswerTooLarge(f'answer longer than {max_bytes} bytes '
                             f'({expected} announced)')
    body = b''
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError('answer not complete by the deadline')
        chunk = response.read1(65536)
        if not chunk:
            break
        body += chunk
        if len(body) > max_bytes:
            raise AnswerTooLarge(f'answer longer than {max_bytes} bytes')
    if expected is not None and expected.isdigit() and \
            len(body) < int(expected):
        raise http.client.IncompleteRead(body, int(expected) - len(body))
    return body
