"""Compression profiles in tools/nnh5.py and the C library: every profile round-trips every
dtype bitwise, in both directions; compressible data gets smaller and data no filter shrinks
is stored at its own size (blosc) or within its filter's framing (deflate, LZ4); h5py and
h5dump read the files (plugins found in HDF5's plugin folder); the loaders trust exactly
the filters nnh5 writes (doc/FORMATS.md, "Compression")."""
import os
import shutil
import subprocess

import pycommon as pc
from pycommon import check, expect_error, h5py, nnh5, np, path

torch = pc.need_torch()
rng = np.random.default_rng(7)
DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64",
          "float16", "bfloat16", "float32", "float64"]
PLUGINS = os.environ.get("NNH5_TEST_PLUGINS") == "1"


def corpus():
    """Every dtype the module saves, as numpy arrays (bfloat16 as a torch tensor)."""
    out = {}
    for name in DTYPES:
        a = pc.random_bits(rng, name, (40, 33))
        out[f"t.{name}"] = pc.torch_of(name, a) if name == "bfloat16" else a
        out[f"small.{name}"] = pc.random_bits(rng, name, (3,)) if name != "bfloat16" else \
            pc.torch_of(name, pc.random_bits(rng, name, (3,)))
    out["scalar"] = np.float64(2.5)
    return out


def load_exact(f):
    """Every tensor as saved: numpy arrays (torch has no uint16..64); bfloat16, which the
    module widens exactly to float32 for numpy, narrowed back to its bits."""
    out = dict(nnh5.load_state_dict(f, numpy=True))
    with h5py.File(f, "r") as h:
        bf = [k for k in out if h[k.replace(".", "/")].attrs.get("nnh5_dtype") == "bfloat16"]
    for k in bf:
        top = (np.asarray(out[k]).view("<u4") >> 16).astype("<u2")
        out[k] = torch.from_numpy(top.view("<i2").copy()).view(torch.bfloat16)
    return out


def same(want, got, what):
    check(pc.bits(want) == pc.bits(got), what)


def round_trips():
    sd = corpus()
    for profile in nnh5.COMPRESSION:
        f = path(f"py-{profile}.h5")
        nnh5.save_state_dict(sd, f, compression=profile)
        back = load_exact(f)
        for k in sd:
            same(sd[k], back[k], f"{profile}: {k} round-trips bitwise")
        with h5py.File(f, "r") as h:
            d = h["t/float32"]
            check((d.chunks is not None) == (profile != "none"),
                  f"{profile}: chunked exactly when compressed", str(d.chunks))
            check(h["small/float32"].chunks is None and h["scalar"].chunks is None,
                  f"{profile}: small and scalar tensors stay contiguous")
            check(np.array_equal(d[()].view("<u4"), np.asarray(sd["t.float32"]).view("<u4")),
                  f"{profile}: h5py reads the compressed data")
        # The C library reads what Python wrote (bitwise, checksums verified) ...
        if pc.HELPER:
            got = {k: (dt, shape, data) for k, dt, shape, _, data in
                   pc.parse_dump(pc.helper("dump", "state_dict", f).stdout)}
            check(all(got[k] == pc.bits(v) for k, v in sd.items()),
                  f"{profile}: the C library loads the Python file bitwise")
            # ... and Python reads what C wrote with the same profile.
            cf = path(f"c-{profile}.h5")
            pc.helper("resave-profile", profile, f, cf)
            back = load_exact(cf)
            check(all(pc.bits(sd[k]) == pc.bits(back[k]) for k in sd),
                  f"{profile}: Python loads the C file bitwise")
            with h5py.File(cf, "r") as h, h5py.File(f, "r") as p:
                check(h["t/float32"].id.get_create_plist().get_nfilters() ==
                      p["t/float32"].id.get_create_plist().get_nfilters() and
                      [h["t/float32"].id.get_create_plist().get_filter(i)[0] for i in
                       range(h["t/float32"].id.get_create_plist().get_nfilters())] ==
                      [p["t/float32"].id.get_create_plist().get_filter(i)[0] for i in
                       range(p["t/float32"].id.get_create_plist().get_nfilters())],
                      f"{profile}: C and Python write the same filters")
        if shutil.which("h5dump"):
            r = subprocess.run(["h5dump", "-d", "/t/int32", f], capture_output=True, text=True)
            check(r.returncode == 0 and "DATA" in r.stdout, f"{profile}: h5dump reads it",
                  r.stderr[-300:])


def sizes():
    torch.manual_seed(0)
    w = torch.randn(512, 512)
    sd = {"w": w, "bf": w.to(torch.bfloat16), "adam": torch.rand(512, 512) * 1e-6,
          "zeros": torch.zeros(512, 512),
          "random": torch.from_numpy(rng.integers(0, 256, (1024, 1024), dtype=np.uint8))}
    for profile in ("fast", "archive"):
        f = path(f"sizes-{profile}.h5")
        nnh5.save_state_dict(sd, f, compression=profile)
        with h5py.File(f, "r") as h:
            st = {k: h[k].id.get_storage_size() for k in sd}
            raw = {k: h[k].nbytes for k in sd}
        for k in ("w", "bf", "adam"):
            check(st[k] < raw[k], f"{profile}: {k} stored smaller ({st[k]} of {raw[k]})")
        check(st["zeros"] == raw["zeros"], f"{profile}: zeros past 100:1 stored as they are")
        used = nnh5.compression_filters(profile)
        if used.startswith("blosc"):
            check(st["random"] == raw["random"], f"{profile}: random bytes stored raw",
                  f"{st['random']} of {raw['random']}")
        else:
            check(raw["random"] <= st["random"] <= raw["random"] * 1.002,
                  f"{profile}: random bytes within the filter's framing",
                  f"{st['random']} of {raw['random']}")
        back = nnh5.load_state_dict(f)
        check(all(torch.equal(back[k], sd[k]) for k in sd), f"{profile}: sizes file loads")


def trust():
    check(nnh5.compression_filters("none") == "none", "compression_filters('none')")
    if PLUGINS:
        check(nnh5.compression_filters("fast") == "shuffle+lz4"
              and nnh5.compression_filters("archive") == "blosc(zstd,5,shuffle)",
              "with the plugins installed the profiles use them")
    expect_error(lambda: nnh5.save({"x": np.ones(3)}, path("bad.h5"), compression="zip"),
                 nnh5.InvalidError, ["unknown compression profile 'zip'"], "unknown profile")
    # A stranger's filters and parameters nnh5 does not write stay refused.
    f = path("lzf.h5")
    with h5py.File(f, "w") as h:
        h.create_dataset("x", data=np.ones(4096, dtype="<f4"), compression="lzf")
    expect_error(lambda: nnh5.load(f, numpy=True), nnh5.UnsafeError,
                 ["'/x' uses filter 32000", "a filter nnh5 does not write"], "LZF refused")
    if pc.HELPER:
        r = pc.helper("dump", "state_dict", f, check_rc=False)
        check(r.returncode != 0 and "a filter nnh5 does not write" in r.stderr,
              "LZF refused by the C library", r.stderr)
    if PLUGINS:
        f = path("blosc-lz4hc-9.h5")
        with h5py.File(f, "w") as h:
            h.create_dataset("x", data=np.ones(4096, dtype="<f4"), chunks=(1024,),
                             compression=32001, compression_opts=(0, 0, 0, 0, 5, 1, 9))
        expect_error(lambda: nnh5.load(f, numpy=True), nnh5.UnsafeError,
                     ["blosc with parameters nnh5 does not write"], "blosc compressor 9 refused")
        # blosc with lz4 inside (a compressor nnh5 trusts): loads
        f = path("blosc-lz4.h5")
        with h5py.File(f, "w") as h:
            h.create_dataset("x", data=np.arange(4096, dtype="<f4"), chunks=(1024,),
                             compression=32001, compression_opts=(0, 0, 0, 0, 5, 1, 1))
        check(np.array_equal(nnh5.load(f, numpy=True)["x"], np.arange(4096, dtype="<f4")),
              "a stranger's blosc file within the bounds loads")


def models_and_dicts():
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    f = path("model.h5")
    nnh5.save_model(net, f, compression="archive")
    m = nnh5.load_model(f)
    x = torch.randn(5, 64)
    check(torch.equal(m(x), net(x)), "a compressed model loads and runs the same")
    f = path("list.h5")
    items = [torch.randn(100, 10), torch.arange(500)]
    nnh5.save(items, f, compression="fast")
    back = nnh5.load(f)
    check(all(torch.equal(a, b) for a, b in zip(items, back)), "a compressed list loads")


round_trips()
sizes()
trust()
models_and_dicts()
pc.finish("compress")
