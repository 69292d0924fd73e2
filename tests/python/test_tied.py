"""Tied weights in tools/nnh5.py: tensors sharing memory save as one dataset and hard links
(h5py sees two names of one dataset) and load back sharing memory, counted once; the C
library reads and writes the same files (doc/FORMATS.md, "Tied weights")."""
import os
import sys

import pycommon as pc
from pycommon import check, expect_error, h5py, nnh5, np, path

torch = pc.need_torch()


class TinyGPT(torch.nn.Module):
    """GPT-2's tie: the token embedding is the output projection."""

    def __init__(self):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.wte = torch.nn.Embedding(300, 16)
        self.transformer.h = torch.nn.ModuleList([torch.nn.Linear(16, 16) for _ in range(2)])
        self.lm_head = torch.nn.Linear(16, 300, bias=False)
        self.lm_head.weight = self.transformer.wte.weight


def same_object(f, a, b):
    return h5py.h5o.get_info(f[a].id).addr == h5py.h5o.get_info(f[b].id).addr


def gpt2():
    torch.manual_seed(0)
    model = TinyGPT()
    sd = model.state_dict()
    check(sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr(),
          "torch ties the state dict's two names")
    tied, copies = path("gpt2.h5"), path("gpt2-copies.h5")
    nnh5.save_state_dict(sd, tied)
    nnh5.save_state_dict({k: v.clone() for k, v in sd.items()}, copies)
    with h5py.File(tied, "r") as f:
        check(same_object(f, "transformer/wte/weight", "lm_head/weight"),
              "h5py: lm_head/weight and transformer/wte/weight are one dataset")
        check(np.array_equal(f["lm_head/weight"][()], sd["lm_head.weight"].numpy()),
              "h5py reads the values under the second name")
    with h5py.File(copies, "r") as f:
        check(not same_object(f, "transformer/wte/weight", "lm_head/weight"),
              "untied values are two datasets")
    saved = 300 * 16 * 4
    check(os.path.getsize(copies) - os.path.getsize(tied) >= saved - 4096,
          "the tied file stores the embedding once",
          f"{os.path.getsize(copies)} vs {os.path.getsize(tied)}")
    back = nnh5.load_state_dict(tied)
    check(list(back) == list(sd), "keys in order", str(list(back)))
    check(all(torch.equal(back[k], sd[k]) for k in sd), "values equal")
    check(back["lm_head.weight"].data_ptr() == back["transformer.wte.weight"].data_ptr(),
          "loaded back tied: one buffer")
    back["lm_head.weight"][0, 0] = 123.0
    check(back["transformer.wte.weight"][0, 0].item() == 123.0, "the tie is live")
    m2 = TinyGPT()
    m2.load_state_dict(back)
    check(m2.lm_head.weight is m2.transformer.wte.weight, "the model keeps its tie after a load")
    # Counted once: loads under a cap that a copy would pass; as copies it is refused.
    cap = sum(v.numel() * 4 for k, v in sd.items() if k != "lm_head.weight")
    check(len(nnh5.load_state_dict(tied, max_load_bytes=cap)) == len(sd),
          "a tie counts once against max_load_bytes")
    expect_error(lambda: nnh5.load_state_dict(tied, max_load_bytes=cap, copy_aliases=True),
                 nnh5.LimitError, ["lm_head/weight", "max_load_bytes"],
                 "copy_aliases: the second name counts again")
    cp = nnh5.load_state_dict(tied, copy_aliases=True)
    check(cp["lm_head.weight"].data_ptr() != cp["transformer.wte.weight"].data_ptr()
          and torch.equal(cp["lm_head.weight"], cp["transformer.wte.weight"]),
          "copy_aliases: equal copies")
    # numpy loads keep the tie too
    npd = nnh5.load_state_dict(tied, numpy=True)
    check(np.shares_memory(npd["lm_head.weight"], npd["transformer.wte.weight"]),
          "numpy=True: the two arrays share memory")
    return tied


def c_library(tied):
    """The C library loads the tie and writes it back as a hard link."""
    if not pc.HELPER:
        return
    resaved = path("gpt2-c.h5")
    pc.helper("resave", tied, resaved)
    with h5py.File(resaved, "r") as f:
        check(same_object(f, "transformer/wte/weight", "lm_head/weight"),
              "C: a tie loaded and saved again stays one dataset")
    back = nnh5.load_state_dict(resaved)
    check(back["lm_head.weight"].data_ptr() == back["transformer.wte.weight"].data_ptr(),
          "a file the C library wrote loads tied")


def nested_and_containers():
    # A tie deep in nested modules, and views that are not ties.
    base = torch.arange(24, dtype=torch.float32)
    sd = {"enc.block.0.attn.w": base, "dec.block.3.attn.w": base,
          "dec.block.3.attn.v": base.view(4, 6),  # same memory, another shape: a copy
          "dec.half": base[:12]}                  # same start, another shape: a copy
    f = path("nested.h5")
    nnh5.save_state_dict(sd, f)
    with h5py.File(f, "r") as h:
        check(same_object(h, "enc/block/0/attn/w", "dec/block/3/attn/w"),
              "a tie across nested groups is one dataset")
        check(not same_object(h, "enc/block/0/attn/w", "dec/block/3/attn/v")
              and not same_object(h, "enc/block/0/attn/w", "dec/half"),
              "other views of the same memory are separate datasets")
    back = nnh5.load_state_dict(f)
    check(back["dec.block.3.attn.w"].data_ptr() == back["enc.block.0.attn.w"].data_ptr(),
          "the nested tie loads back tied")
    check(back["dec.half"].data_ptr() != back["enc.block.0.attn.w"].data_ptr()
          and torch.equal(back["dec.half"], base[:12]), "the slice loads as its own tensor")
    # save(): dicts and lists of numpy arrays
    a = np.linspace(0, 1, 50, dtype=np.float32)
    f = path("dict.h5")
    nnh5.save({"a": a, "b": a, "c": a.copy()}, f)
    with h5py.File(f, "r") as h:
        check(same_object(h, "a", "b") and not same_object(h, "a", "c"),
              "a dict of numpy arrays: a and b one dataset, c its own")
    back = nnh5.load(f, numpy=True)
    check(np.shares_memory(back["a"], back["b"]) and not np.shares_memory(back["a"], back["c"]),
          "dict loads back with a and b tied")
    f = path("list.h5")
    t = torch.ones(3, 3)
    nnh5.save([t, torch.zeros(2), t], f)
    with h5py.File(f, "r") as h:
        check(same_object(h, "0", "2"), "a list: items 0 and 2 one dataset")
    back = nnh5.load(f)
    check(back[0].data_ptr() == back[2].data_ptr() and torch.equal(back[2], t),
          "list loads back tied")
    # Empty tensors have nothing to share: separate datasets.
    e = torch.zeros(0)
    f = path("empty.h5")
    nnh5.save({"x": e, "y": e}, f)
    with h5py.File(f, "r") as h:
        check(not same_object(h, "x", "y"), "empty tensors are not tied")


def hostile_aliases():
    """201 names of one dataset made by h5py: a tie-load is one buffer; copies stay capped."""
    f = path("aliases.h5")
    with h5py.File(f, "w") as h:
        d = h.create_dataset("data", data=np.ones(1 << 20, dtype=np.float32))  # 4 MiB
        for i in range(200):
            h[f"w{i:03d}"] = d
    back = nnh5.load(f, numpy=True, max_load_bytes=5 << 20)
    check(len(back) == 201 and all(np.shares_memory(v, back["data"]) for v in back.values()),
          "201 names load as one buffer under a 5 MiB cap")
    expect_error(lambda: nnh5.load(f, numpy=True, copy_aliases=True, max_load_bytes=64 << 20),
                 nnh5.LimitError,
                 # libnnh5 also caps the copies of aliases at the file's size (doc/PYTHON.md)
                 ["past the file's size"] if pc.C_MODE else ["max_load_bytes"],
                 "as copies: refused by the cap")


tied = gpt2()
c_library(tied)
nested_and_containers()
hostile_aliases()
pc.finish("tied")
