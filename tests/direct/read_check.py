#!/usr/bin/python3
"""Differential test of the direct HDF5 reader (lib/file/load_direct.c).

direct_gen writes COUNT random saves (state dicts, dicts, lists, tensors:
random names with nesting and UTF-8, every dtype, rank 0 and empty shapes)
through both writers. read_check loads every file with the one-call load of
its kind twice, with the direct reader and with NNH5_DIRECT_READ=0 (the HDF5
API path): keys, order, dtypes, shapes and data must be equal bit for bit,
and errors equal in status and message. The direct reader must take every
file of the direct writer, and the API writer's files whose headers it
reads; h5py's files (superblock version 0, or version 3 with object times)
must load the same both ways. Then damaged copies of a few small files
(every CORRUPT_STEP-th byte flipped, cut at every CORRUPT_STEP-th length)
must either load as the original or be declined (read_check corrupt).

Usage: read_check.py SCRATCH_DIR DIRECT_GEN READ_CHECK SEED COUNT CORRUPT_STEP
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import pycommon as pc  # noqa: E402  (exits 77 without h5py/numpy; empties SCRATCH_DIR)
from pycommon import check, h5py, np, path  # noqa: E402

GEN, READ, SEED, COUNT, STEP = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), \
    sys.argv[6]


def compare(kind, files):
    """read_check compare: {file: 'taken' | 'declined'}."""
    p = subprocess.run([READ, "compare", kind] + files, capture_output=True, text=True)
    check(p.returncode == 0, f"direct and API loads equal ({kind}, {len(files)} files)",
          p.stderr[-1500:])
    return {f: t for t, f in (line.split(" ", 1) for line in p.stdout.splitlines())}


def h5py_files():
    """State dicts, dicts, lists and a tensor as h5py writes them."""
    rng = np.random.default_rng(int(SEED))
    out = []
    for libver in ("earliest", "latest"):
        for kind in ("state_dict", "dict", "list", "tensor"):
            f = path(f"h5py-{kind}-{libver}.h5")
            with h5py.File(f, "w", libver=libver, track_order=True) as h:
                h.attrs["nnh5_format_version"] = np.int64(1)
                h.attrs["nnh5_kind"] = kind
                if kind == "tensor":
                    h["tensor"] = rng.standard_normal((3, 4)).astype(np.float32)
                elif kind == "list":
                    for i in range(5):
                        h[str(i)] = rng.integers(0, 100, size=(i,), dtype=np.int64)
                    h.attrs["nnh5_length"] = np.int64(5)
                else:
                    keys = ["a.w", "a.b", "b.c.d", "é.x"] if kind == "state_dict" else \
                        ["w", "b", "é"]
                    for k in keys:
                        name = k.replace(".", "/") if kind == "state_dict" else k
                        h.create_dataset(name, data=rng.standard_normal((2, 3)),
                                         track_order=True)
                    h.attrs["nnh5_keys"] = keys
            out.append((kind, f))
    return out


def main():
    d = path("pairs")
    os.makedirs(d)
    p = subprocess.run([GEN, SEED, str(COUNT), d], capture_output=True, text=True)
    check(p.returncode == 0, "direct_gen", p.stderr[-1000:])
    kinds = dict(line.split() for line in p.stdout.splitlines())
    check(len(kinds) == COUNT, "direct_gen wrote every pair", f"{len(kinds)} of {COUNT}")
    by_kind = {}
    for i, k in kinds.items():
        by_kind.setdefault(k, []).extend(
            [os.path.join(d, f"{i}-direct.h5"), os.path.join(d, f"{i}-api.h5")])
    taken = {}
    for k, files in by_kind.items():
        taken.update(compare(k, files))
    direct = [f for f in taken if f.endswith("-direct.h5")]
    api = [f for f in taken if f.endswith("-api.h5")]
    missed = [f for f in direct if taken[f] != "taken"]
    check(not missed, "the direct reader takes every file of the direct writer", missed[:5])
    n_api = sum(taken[f] == "taken" for f in api)
    print(f"pairs: {COUNT}; direct writer's files taken: {len(direct) - len(missed)} of "
          f"{len(direct)}; API writer's: {n_api} of {len(api)}")
    # A key list past an object header's message size: the root's attributes are dense.
    big = path("keys4096.h5")
    p = subprocess.run([GEN, "keys", "4096", big], capture_output=True, text=True)
    check(p.returncode == 0, "direct_gen keys 4096", p.stderr[-500:])
    check(compare("state_dict", [big])[big] == "taken",
          "the direct reader takes a root whose attributes are dense")
    # A file of one kind loaded as another: the same both ways.
    for k, other in (("state_dict", "dict"), ("dict", "state_dict"), ("list", "dict"),
                     ("state_dict", "list")):
        if by_kind.get(k):
            compare(other, by_kind[k][:20])
    # h5py's files: version-0 superblocks are declined; whatever is taken must be equal.
    hp = h5py_files()
    res = {}
    for kind, f in hp:
        res.update(compare(kind, [f]))
    early = [f for f in res if "earliest" in f and res[f] == "taken"]
    check(not early, "h5py's default files (superblock 0) are declined", early)
    print("h5py files: " + ", ".join(f"{os.path.basename(f)} {t}" for f, t in sorted(res.items())))
    # Damaged copies of small files of each kind.
    small = {}
    for i, k in kinds.items():
        f = os.path.join(d, f"{i}-direct.h5")
        if os.path.getsize(f) < 8000 and (k not in small or
                                          os.path.getsize(f) > os.path.getsize(small[k])):
            small[k] = f
    for k, f in sorted(small.items()):
        p = subprocess.run([READ, "corrupt", k, f, STEP], capture_output=True, text=True)
        check(p.returncode == 0, f"damaged copies of {os.path.basename(f)} ({k})",
              p.stdout[-500:] + p.stderr[-1500:])
        print(f"{k}: {p.stdout.strip()}")
    print(f"summary: {pc.N_CHECKS} checks, {len(pc.FAILURES)} failed")
    return 0 if not pc.FAILURES else 1


if __name__ == "__main__":
    sys.exit(main())
