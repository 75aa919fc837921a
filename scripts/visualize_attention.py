"""Draw what the object context attends to: one PNG figure per image.

    python -m scripts.visualize_attention street.png --network resnet101 --method asp_oc_dsn \
        --restore-from CS_scenes_40000.pth --points 300,200 900,450 --output-path ./attention
    python -m scripts.visualize_attention img.jpg --network hrnetv2_w48 --method ocr \
        --num-classes 150 --restore-from ocr_ade20k.pth --grid 3 --top-k 6

OCNet (Base-OC, Pyramid-OC, ASP-OC): one row per query pixel, one heat-map panel per attention block
(Pyramid-OC: the attention inside the query's cell; pooled blocks: over the pooled map).
OCRNet: the soft object regions of the top-k predicted classes, then per query pixel its
pixel-region relation (sum_k w_k M_k, the regions weighted by the pixel's attention to them) and its
largest weights. The maps are read through forward hooks; the model's forward is unchanged.
"""
import argparse
import os
import sys

import numpy as np
import torch

from utils import predict_images as P
from utils.attention_figure import draw_figure, heat_panel, upsample
from utils.attention_maps import AttentionProbe, check_points
from utils.cli import run_main
from utils.errors import ConfigError
from utils.logger import setup_logging


def point(text):
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a point 'x,y' in image pixels, got {text!r}") from None
    return x, y


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    P.add_model_flags(parser)
    g = parser.add_argument_group("attention")
    g.add_argument("--points", type=point, nargs="+", default=None, metavar="X,Y",
                   help="query pixels (x = column, y = row of the original image)")
    g.add_argument("--grid", type=int, default=2,
                   help="without --points: an N x N grid of query pixels at the cell centres")
    g.add_argument("--top-k", type=int, default=4, help="OCR: soft object regions of the k largest classes")
    g.add_argument("--output-path", default="./attention_maps", help="folder of the PNG figures")
    return parser


def grid_points(n, height, width):
    """N x N query pixels at the centres of an N x N grid of the image."""
    return [(int((i + 0.5) * width / n), int((j + 0.5) * height / n)) for j in range(n) for i in range(n)]


def class_name(k, num_classes):
    from dataset.labels import CLASS_NAMES
    return CLASS_NAMES[k] if num_classes == len(CLASS_NAMES) else f"class {k}"


def ocnet_rows(results, rgb, points):
    rows = []
    for i in range(len(points)):
        row = [(f"query {i + 1}", rgb, i + 1)]
        for res in results:
            panel, top = heat_panel(rgb, upsample(res.maps[i], rgb.shape[:2]))
            row.append((f"{res.name}\n{res.kind}, max {top:.3g}", panel, i + 1))
        rows.append(row)
    return rows


def ocr_rows(results, rgb, points, pred, top_k, num_classes):
    regions = next(r.maps for r in results if r.kind == "regions")           # (K, h, w)
    relation = next(r.maps for r in results if r.kind == "relation")         # (P, K)
    counts = np.bincount(pred.ravel(), minlength=num_classes)
    classes = [int(k) for k in np.argsort(-counts, kind="stable")[:top_k] if counts[k] > 0]
    first = [("image + queries", rgb, True)]
    for k in classes:
        panel, top = heat_panel(rgb, upsample(regions[k], rgb.shape[:2]))
        share = 100.0 * counts[k] / pred.size
        first.append((f"region: {class_name(k, num_classes)}\n{share:.0f}% of pixels, max {top:.2g}",
                      panel, False))
    rows, lines = [first], []
    peak = regions / regions.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]  # each region max 1
    for i in range(len(points)):
        w = relation[i]                                                        # (K,)
        mix = torch.einsum("k,khw->hw", w, peak)
        panel, top = heat_panel(rgb, upsample(mix, rgb.shape[:2]))
        best = torch.argsort(w, descending=True)[:3].tolist()
        text = ", ".join(f"{class_name(k, num_classes)} {w[k]:.2f}" for k in best)
        rows.append([(f"query {i + 1}", rgb, i + 1),
                     (f"pixel-region relation\nsum_k w_k M_k, max {top:.2g}", panel, i + 1)])
        lines.append(f"query {i + 1} attends to regions: {text}")
    return rows, lines


@torch.no_grad()
def visualize(model, family, num_classes, path, name, args):
    """Run one image through the probed model and write its figure; returns the PNG path."""
    from network import main_output
    rgb = P.read_rgb(path)                                                    # (H, W, 3)
    h, w = rgb.shape[:2]
    points = args.points or grid_points(args.grid, h, w)
    check_points(points, h, w)
    x = P.preprocess(rgb, family).to(next(model.parameters()).device)
    with AttentionProbe(model) as probe:
        out = main_output(model(x))                                           # (1, K, h', w')
    results = probe.maps(points, (h, w))
    if any(r.kind == "regions" for r in results):
        up = torch.nn.functional.interpolate(out, size=(h, w), mode="bilinear",
                                             align_corners=bool(getattr(model, "align_corners", True)))
        rows, lines = ocr_rows(results, rgb, points, up[0].argmax(0).cpu().numpy(), args.top_k,
                               num_classes)
        title = f"{name}: OCR soft object regions and pixel-region relation"
    else:
        rows, lines = ocnet_rows(results, rgb, points), []
        title = f"{name}: object-context attention of each block (softmax over the attended positions)"
    target = os.path.join(args.output_path, f"{name}_attention.png")
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    return draw_figure(rows, points, title, target, lines)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    P.check_model_flags(parser, args)
    if args.grid <= 0 or args.top_k <= 0:
        parser.error("--grid and --top-k must be positive")
    log = setup_logging(args.log_file)
    images = P.collect_images(args.inputs)
    model, family, num_classes = P.load_model(args, log)
    written = []
    for path, name in images:
        try:
            written.append(visualize(model, family, num_classes, path, name, args))
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        log.info(f"wrote {written[-1]}")
    return written


if __name__ == "__main__":
    sys.exit(run_main(main))
