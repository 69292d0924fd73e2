#!/usr/bin/python3
"""Train the source-term MLP of examples/heat in PyTorch and save it with
tools/nnh5.py (nnh5.save_model), as a simulation group would ship a
surrogate model to the solver.

    make_model.py OUT.h5 [NNH5_PY_DIR]

The model maps a grid point's (u, x, y) to a heat source s: a float64
Sequential 3-32-32-1 (Tanh, Tanh) fitted for 300 Adam steps to
    s(u, x, y) = 2 sin(pi x) sin(pi y) - u^3 / 2
on random points (seeded), i.e. a heater in the middle of the plate and a
cubic loss. Exit 77 when torch, numpy or h5py are missing.
"""
import math
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "tools"))
try:
    import torch
    import nnh5
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

torch.manual_seed(1)
torch.set_num_threads(1)
model = torch.nn.Sequential(
    torch.nn.Linear(3, 32), torch.nn.Tanh(),
    torch.nn.Linear(32, 32), torch.nn.Tanh(),
    torch.nn.Linear(32, 1)).double()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(300):
    p = torch.rand(256, 3, dtype=torch.float64)
    u, x, y = p[:, 0], p[:, 1], p[:, 2]
    target = 2 * torch.sin(math.pi * x) * torch.sin(math.pi * y) - u ** 3 / 2
    loss = torch.mean((model(p)[:, 0] - target) ** 2)
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
probe = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.25, 0.75]], dtype=torch.float64)
nnh5.save_model(model, sys.argv[1], probe_input=probe)
print(f"trained 300 steps, loss {loss.item():.2e}; saved {sys.argv[1]}")
