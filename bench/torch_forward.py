#!/usr/bin/python3
"""bench/torch_forward.py - torch's forward pass (eval, no_grad, float32) on the
shapes of bench/nn_bench.c, printed as lines "LAYERS BATCH MEDIAN_MICROSECONDS"
for nn_bench to read. Uses torch's default thread count (all cores), as
OpenBLAS does by default in nn_bench.
"""
import statistics
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit(0)

CONFIGS = [((20, 256, 10), b) for b in (1, 64, 1024)] + \
          [((1024, 4096, 4096, 1024), b) for b in (1, 64, 1024)]


def model(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


with torch.no_grad():
    for widths, batch in CONFIGS:
        torch.manual_seed(0)
        m = model(widths)
        x = torch.randn(batch, widths[0])
        for _ in range(3):
            m(x)
        times = []
        start = time.perf_counter()
        while len(times) < 2000 and (len(times) < 7 or time.perf_counter() - start < 1.5):
            t0 = time.perf_counter()
            m(x)
            times.append((time.perf_counter() - t0) * 1e6)
        print("%s %d %.3f" % ("-".join(map(str, widths)), batch, statistics.median(times)), flush=True)
