"""The SHA-256 of a file, read a block at a time (large checkpoints and
dataset files are never held whole)."""
import hashlib

# bytes read at a time
BLOCK = 1 << 20


def file_sha256(path: str) -> str:
    """The hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(BLOCK), b''):
            digest.update(block)
    return digest.hexdigest()
