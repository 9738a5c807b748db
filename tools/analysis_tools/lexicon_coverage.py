"""How much of a training set's captions an attribute lexicon reads.

    python tools/analysis_tools/lexicon_coverage.py CONFIG \
        --lexicon configs/_base_/lexicons/pedes.py [--max-captions 100000]

Reads the training captions of CONFIG's ``train_dataloader.dataset`` (no
image is loaded) with the lexicon that ``ConsensusTokens`` and
``CounterfactualTokenScorer`` would use (``--lexicon``, else the config's
own ``attribute_lexicon``) and prints: the captions read and the share
with at least one colour statement; the colour words found and the share
that describe a garment; the statements per garment class; and the words
that most often follow a colour word that describes no garment, the
candidates to add to the lexicon's garments (CUHK-PEDES's
``processed_tokens`` are these captions' words, so this reads its
vocabulary). ``--out`` writes the counts as JSON.
"""
import argparse
import os.path as osp
import sys
from collections import Counter
from typing import Iterable

from mmengine.config import Config
from terminaltables import AsciiTable

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from gadms.cli import register_all_modules  # noqa: E402
from gadms.cli.config_names import resolve_config_path  # noqa: E402
from gadms.common.atomic import write_json  # noqa: E402
from gadms.common.progress import Progress  # noqa: E402
from gadms.datasets.attribute_lexicon import (WORD,  # noqa: E402
                                              AttributeLexicon)
from gadms.registry import DATASETS  # noqa: E402


def coverage(captions: Iterable[str], lexicon: AttributeLexicon,
             total: int) -> dict:
    """Counts of what ``lexicon`` reads in ``captions`` (``total`` of
    them, for the progress lines)."""
    counts = dict(captions=0, with_statement=0, colour_words=0,
                  attached=0, garments=Counter(), unattached_next=Counter())
    progress = Progress(total, 'reading captions')
    for caption in captions:
        statements = lexicon.statements(caption)
        counts['captions'] += 1
        counts['with_statement'] += bool(statements)
        for statement in statements:
            counts['colour_words'] += 1
            if statement.attribute is not None:
                counts['attached'] += 1
                counts['garments'][statement.attribute] += 1
                continue
            following = WORD.search(caption.lower(), statement.end)
            counts['unattached_next'][following.group()
                                      if following else '(end)'] += 1
        progress.update()
    progress.close()
    return counts


def _training_captions(cfg: Config, limit: int):
    """The dataset's training captions (the first ``limit``) and their
    count; the samples' data infos are read without the pipeline."""
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset,
                                  pipeline=[]))
    total = min(len(dataset), limit) if limit else len(dataset)
    return (dataset.get_data_info(i)['captions'][0]
            for i in range(total)), total


def _share(part: int, whole: int) -> str:
    return f'{part} ({100 * part / whole:.1f}%)' if whole else '0'


def print_report(counts: dict, top: int) -> None:
    summary = [['captions', str(counts['captions'])],
               ['with a colour statement',
                _share(counts['with_statement'], counts['captions'])],
               ['colour words', str(counts['colour_words'])],
               ['describing a garment',
                _share(counts['attached'], counts['colour_words'])]]
    print(AsciiTable(summary, 'lexicon coverage').table)
    garments = [['garment class', 'statements']] + [
        [name, str(n)] for name, n in counts['garments'].most_common()]
    print(AsciiTable(garments, 'statements per garment class').table)
    candidates = [['word after a colour with no garment', 'count']] + [
        [word, str(n)] for word, n in counts['unattached_next'].most_common(
            top)]
    print(AsciiTable(candidates, 'candidates for the lexicon').table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a config with a train_dataloader')
    parser.add_argument('--lexicon', help='a config file that defines '
                        'attribute_lexicon (default: CONFIG\'s own)')
    parser.add_argument('--max-captions', type=int, default=0,
                        help='read only the first N captions (0: all)')
    parser.add_argument('--top', type=int, default=20,
                        help='candidate words listed')
    parser.add_argument('--out', help='write the counts here (JSON)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = Config.fromfile(resolve_config_path(args.config))
    source = Config.fromfile(args.lexicon) if args.lexicon else cfg
    if 'attribute_lexicon' not in source:
        raise SystemExit(f'{args.lexicon or args.config} defines no '
                         'attribute_lexicon: pass --lexicon '
                         'configs/_base_/lexicons/<name>.py')
    lexicon = AttributeLexicon.build(source.attribute_lexicon.to_dict())
    captions, total = _training_captions(cfg, args.max_captions)
    counts = coverage(captions, lexicon, total)
    print_report(counts, args.top)
    if args.out:
        write_json(args.out, counts, indent=1)


if __name__ == '__main__':
    main()
