"""Write SynthPerson to disk in a benchmark's published format.

    python tools/dataset_converters/synth_person_to_benchmark.py \
        data/synth-cuhk-pedes --layout cuhk-pedes --seed 0

Layouts: cuhk-pedes (reid_raw.json + imgs/), icfg-pedes (ICFG-PEDES.json +
imgs/), rstpreid (data_captions.json + imgs/), webperson-json
(annotations.json + images/) and webperson-parquet (data/*.parquet). The
folder then loads with the matching dataset, e.g.
``dict(type='CUHKPEDES', data_root='data/synth-cuhk-pedes', ...)``.
"""
import argparse

from gadms.datasets import LAYOUT_SPLITS, export_synth_person


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write SynthPerson in a benchmark format')
    parser.add_argument('out_dir', help='folder to create')
    parser.add_argument('--layout', choices=sorted(LAYOUT_SPLITS),
                        default='cuhk-pedes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-ids', type=int, default=200)
    parser.add_argument('--val-ids', type=int, default=50)
    parser.add_argument('--test-ids', type=int, default=50)
    parser.add_argument('--images-per-identity', type=int, default=4)
    parser.add_argument('--captions-per-image', type=int, default=2)
    parser.add_argument('--noise-rate', type=float, default=0.0,
                        help='share of captions with an irrelevant clause')
    parser.add_argument('--wrong-attribute-rate', type=float, default=0.0,
                        help='share of captions with a wrong colour word')
    parser.add_argument('--rows-per-shard', type=int, default=1000,
                        help='webperson-parquet: rows per shard')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    written = export_synth_person(
        args.out_dir,
        args.layout,
        rows_per_shard=args.rows_per_shard,
        num_identities=dict(
            train=args.train_ids, val=args.val_ids, test=args.test_ids),
        images_per_identity=args.images_per_identity,
        captions_per_image=args.captions_per_image,
        noise_rate=args.noise_rate,
        wrong_attribute_rate=args.wrong_attribute_rate,
        seed=args.seed)
    print(f'wrote {written}')


if __name__ == '__main__':
    main()
