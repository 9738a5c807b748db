"""Turn OpenAI CLIP weights into a gadms checkpoint.

    python tools/model_converters/openai_clip_to_gadms.py ViT-B-16.pt \
        clip_vitb16_384x128.pth --arch ViT-B-16-quickgelu --image-size 384 128

Reads an OpenAI JIT archive (its tensors only: the archive's code is never
run) or state dict (or an open_clip / safetensors file), resizes the image
position embedding to the input grid, and writes ``backbone.*`` weights:
evaluate the original CLIP with ``tools/test.py CLIP_SDM_CONFIG
clip_vitb16_384x128.pth`` (the "None" row of the paper's Table 2; a GA-DMS
config needs ``--partial-load``, its MTP head is not in the file) or start
a training from it with ``load_from`` and ``--partial-load``. Prints the
model keys the file did not provide.
"""
import argparse
import json

from gadms.common.atomic import atomic_torch_save
from gadms.models.backbones import OpenCLIPBackbone
from gadms.models.backbones.clip_weights import read_clip_state_dict


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='OpenAI CLIP file')
    parser.add_argument('dst', help='gadms checkpoint to write')
    parser.add_argument('--arch', default='ViT-B-16-quickgelu',
                        help='open_clip model name, or a JSON dict of '
                        'embed_dim / vision_cfg / text_cfg')
    parser.add_argument('--image-size', type=int, nargs=2,
                        default=[384, 128], metavar=('HEIGHT', 'WIDTH'))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    arch = json.loads(args.arch) if args.arch.startswith('{') else args.arch
    backbone = OpenCLIPBackbone(arch=arch, image_size=args.image_size,
                                pretrained=args.src)
    provided = set(read_clip_state_dict(args.src))
    for key in sorted(set(backbone.clip.state_dict()) - provided):
        print(f'not in {args.src}: {key}')
    backbone.init_weights()
    state_dict = {f'backbone.{key}': value
                  for key, value in backbone.state_dict().items()}
    atomic_torch_save(
        dict(state_dict=state_dict,
             meta=dict(source=args.src, arch=arch,
                       image_size=args.image_size)), args.dst)
    print(f'wrote {len(state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
