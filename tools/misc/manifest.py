"""Record a downloaded data folder's files, and check it against the
record later.

    python tools/misc/manifest.py write data/WebPerson data/WebPerson.sha256
    python tools/misc/manifest.py verify data/WebPerson data/WebPerson.sha256

Neither WebPerson nor the three benchmarks publish checksums, so the
folder's state right after a download (or as a colleague has it) is the
reference: ``write`` lists every file under the folder with its size and
SHA-256 (``sha256sum``'s format, paths relative to the folder), ``verify``
reads the folder again and names each file that is missing, changed or
not in the manifest, exiting with 1 when there is any.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from gadms.common.atomic import atomic_write  # noqa: E402
from gadms.common.file_digest import file_sha256  # noqa: E402
from gadms.common.progress import Progress  # noqa: E402


def _files(folder: str) -> list:
    """Every file under ``folder``, relative, sorted."""
    found = []
    for root, _, names in os.walk(folder):
        found += [osp.relpath(osp.join(root, name), folder)
                  for name in names]
    return sorted(found)


def digests(folder: str) -> Dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder``."""
    files = _files(folder)
    progress = Progress(len(files), 'hashing files')
    found = {}
    for name in files:
        found[name] = file_sha256(osp.join(folder, name))
        progress.update()
    progress.close()
    return found


def write(folder: str, manifest: str) -> None:
    lines = [f'{digest}  {name}\n'
             for name, digest in digests(folder).items()]
    with atomic_write(manifest) as f:
        f.writelines(lines)
    print(f'{manifest}: {len(lines)} files of {folder}')


def read(manifest: str) -> Dict[str, str]:
    """The manifest's relative path -> SHA-256, naming a bad line."""
    recorded = {}
    with open(manifest, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            digest, sep, name = line.rstrip('\n').partition('  ')
            if not sep or len(digest) != 64:
                raise SystemExit(f'{manifest} line {number}: expected '
                                 f'"<sha256>  <path>", got {line!r}')
            recorded[name] = digest
    return recorded


def verify(folder: str, manifest: str) -> int:
    """Print what differs; the exit status (1 when anything does)."""
    recorded, present = read(manifest), digests(folder)
    problems = [f'missing: {name}' for name in recorded
                if name not in present]
    problems += [f'changed: {name}' for name, digest in present.items()
                 if name in recorded and recorded[name] != digest]
    problems += [f'not in the manifest: {name}' for name in present
                 if name not in recorded]
    for problem in problems:
        print(problem)
    print(f'{folder}: {len(present)} files, '
          f'{"OK" if not problems else f"{len(problems)} problems"}')
    return 1 if problems else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=['write', 'verify'])
    parser.add_argument('folder', help='the data folder')
    parser.add_argument('manifest', help='the manifest file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not osp.isdir(args.folder):
        raise SystemExit(f'{args.folder} is not a folder')
    if args.action == 'write':
        write(args.folder, args.manifest)
    else:
        sys.exit(verify(args.folder, args.manifest))


if __name__ == '__main__':
    main()
