"""train.py's real command line with a tiny model registered as ``tiny_seg`` (``--network tiny --method
seg``), for tests where the model does not matter: ``python tests/tiny_train.py <train.py flags>``, also
under torchrun. Not a test module."""
import os
import runpy
import sys

import torch
from torch import nn

import network

TRAIN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train.py")


class TinySeg(nn.Module):
    """[aux, main] logits at 1/2 resolution, like the *_dsn models at 1/8; BatchNorm running stats and
    Dropout make the torch RNG stream and the buffers matter."""
    has_aux = True
    align_corners = True

    def __init__(self, num_classes=19, **_):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.drop = nn.Dropout2d(0.5)
        self.dsn = nn.Conv2d(8, num_classes, 1)
        self.cls = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        x = self.drop(torch.relu(self.bn1(self.conv1(x / 100.0))))  # (N, 8, H/2, W/2)
        return [self.dsn(x), self.cls(x)]


if __name__ == "__main__":
    network.NETWORKS["tiny_seg"] = TinySeg
    sys.argv[0] = TRAIN_PY
    runpy.run_path(TRAIN_PY, run_name="__main__")
