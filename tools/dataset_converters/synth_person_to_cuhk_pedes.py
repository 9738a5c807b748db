"""Write SynthPerson to disk in the CUHK-PEDES layout.

    python tools/dataset_converters/synth_person_to_cuhk_pedes.py \
        data/synth-cuhk-pedes --seed 0 --train-ids 200 --val-ids 50 \
        --test-ids 50

The folder then holds ``reid_raw.json`` and ``imgs/`` and loads with
``dict(type='CUHKPEDES', data_root='data/synth-cuhk-pedes', ...)``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from gadms.datasets import export_cuhk_pedes_layout  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write SynthPerson as CUHK-PEDES (reid_raw.json + imgs/)')
    parser.add_argument('out_dir', help='folder to create')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-ids', type=int, default=200)
    parser.add_argument('--val-ids', type=int, default=50)
    parser.add_argument('--test-ids', type=int, default=50)
    parser.add_argument('--images-per-identity', type=int, default=4)
    parser.add_argument('--noise-rate', type=float, default=0.0,
                        help='share of captions with an irrelevant clause')
    parser.add_argument('--wrong-attribute-rate', type=float, default=0.0,
                        help='share of captions with a wrong colour word')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ann_file = export_cuhk_pedes_layout(
        args.out_dir,
        num_identities=dict(
            train=args.train_ids, val=args.val_ids, test=args.test_ids),
        images_per_identity=args.images_per_identity,
        noise_rate=args.noise_rate,
        wrong_attribute_rate=args.wrong_attribute_rate,
        seed=args.seed)
    print(f'wrote {ann_file}')


if __name__ == '__main__':
    main()
