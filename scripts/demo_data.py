"""Generate the synthetic Cityscapes-layout dataset used by the CPU demo of the run scripts.

    python -m scripts.demo_data ./dataset/synthetic_cityscapes --n-train 60 --n-val 10 --n-test 4 \
        --size 192,384
"""
import argparse
import hashlib
import os

from dataset import synthetic
from dataset.synthetic import make_synthetic_cityscapes
from utils.options import int_pair


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--n-train", type=int, default=60)
    parser.add_argument("--n-val", type=int, default=10)
    parser.add_argument("--n-test", type=int, default=4)
    parser.add_argument("--size", type=int_pair, default=(192, 384), help="H,W of every image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stamp = os.path.join(args.root, ".demo_data")
    with open(synthetic.__file__, "rb") as handle:  # regenerate when the generator changes
        generator = hashlib.sha256(handle.read()).hexdigest()[:16]
    wanted = f"{args.n_train} {args.n_val} {args.n_test} {args.size} {args.seed} {generator}\n"
    if os.path.isfile(stamp) and open(stamp).read() == wanted:
        print(f"[demo] synthetic dataset already in {args.root}")
        return args.root
    make_synthetic_cityscapes(args.root, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                              size=args.size, seed=args.seed)
    with open(stamp, "w") as handle:
        handle.write(wanted)
    print(f"[demo] wrote {args.n_train}/{args.n_val}/{args.n_test} train/val/test images "
          f"of {args.size[0]}x{args.size[1]} to {args.root}")
    return args.root


if __name__ == "__main__":
    main()
