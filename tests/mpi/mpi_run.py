#!/usr/bin/python3
"""Run an MPI test program under mpirun, then read the files it left with
h5py and with the serial `nnh5 verify`.

    mpi_run.py MPIRUN NNH5_TOOL NP PROGRAM [CMOCKA_FILTER]

The program writes each sharded file w<P>-<layout>-<dtype>.h5 and, beside
it, serial-<layout>-<dtype>.h5 written by the serial writer from the same
global tensor. h5py must read the same bytes from both (read with the
stored type as the memory type: no conversion, so bfloat16 compares too),
the checksum attributes must be equal, and `nnh5 verify` must accept every
file.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

mpirun, tool, nproc, prog = sys.argv[1:5]
rest = sys.argv[5:]
base = os.environ.get("NNH5_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
folder = tempfile.mkdtemp(prefix="nnh5-mpi-", dir=base)
env = dict(os.environ, NNH5_MPI_DIR=folder)
# A file written by h5py for the program to read sharded (test_h5py_file):
# little-endian, big-endian (a conversion: HDF5 reads it independently) and
# chunked with gzip; element i of the 13 x 10 tensors is i / 2.
with h5py.File(os.path.join(folder, "h5py.h5"), "w") as f:
    x = np.arange(130, dtype="<f4").reshape(13, 10) / 2
    f["le"] = x
    f.create_dataset("be", data=x.astype(">f4"))
    f.create_dataset("chunked", data=x, chunks=(4, 5), compression="gzip")
cmd = [mpirun, "--oversubscribe", "--allow-run-as-root", "-np", nproc, prog] + rest
print(" ".join(cmd), flush=True)
if subprocess.run(cmd, env=env).returncode != 0:
    sys.exit("the MPI program failed")


def raw(path):
    with h5py.File(path, "r") as f:
        ds = f["model/layer.weight"]
        tid = ds.id.get_type()
        buf = np.empty(ds.shape, dtype="V%d" % tid.get_size())
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, buf, mtype=tid)
        return buf.tobytes(), int(ds.attrs["nnh5_xxh3"]), ds.attrs.get("nnh5_sharding")


checked = 0
for path in sorted(glob.glob(os.path.join(folder, "w*-*.h5"))):
    name = os.path.basename(path)
    layout_dtype = name.split("-", 1)[1]
    serial = os.path.join(folder, "serial-" + layout_dtype)
    got, got_sum, record = raw(path)
    want, want_sum, _ = raw(serial)
    if got != want:
        sys.exit("%s: h5py reads other bytes than from %s" % (name, serial))
    if got_sum != want_sum:
        sys.exit("%s: checksum %x, the serial writer's %x" % (name, got_sum, want_sum))
    if record is None:
        sys.exit("%s: no nnh5_sharding attribute" % name)
    # The record: the writers' count and grid, bounds only for uneven splits.
    rec = json.loads(record)
    writers = int(name[1:].split("-")[0])
    if rec["ranks"] != writers or len(rec["parts"]) != 2 or len(rec["bounds"]) != 2:
        sys.exit("%s: nnh5_sharding is %s" % (name, record))
    uneven = any(b is not None for b in rec["bounds"])
    if uneven != (("uneven" in name or "empty" in name) and writers > 1):
        sys.exit("%s: nnh5_sharding is %s" % (name, record))
    checked += 1


def walk(path):
    """Every object of the file with h5py: kind, shape, type, data bytes, attributes."""
    out = {}

    def attrs(obj):
        a = {}
        for k in obj.attrs:
            v = obj.attrs[k]
            a[k] = v.tolist() if hasattr(v, "tolist") else v
        return a

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            tid = obj.id.get_type()
            buf = np.empty(obj.shape, dtype="V%d" % tid.get_size())
            if obj.size:
                obj.id.read(h5py.h5s.ALL, h5py.h5s.ALL, buf, mtype=tid)
            out[name] = ("dataset", obj.shape, tid.encode(), buf.tobytes(), attrs(obj))
        else:
            out[name] = ("group", list(obj.keys()), attrs(obj))

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return out


# Direct metadata against Parallel HDF5 (test_direct_vs_api): the same objects.
pairs = 0
for path in sorted(glob.glob(os.path.join(folder, "diff-direct-*.h5"))):
    twin = path.replace("diff-direct-", "diff-api-")
    a, b = walk(path), walk(twin)
    if a != b:
        diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        sys.exit("%s and %s differ under h5py at %s" % (path, twin, diff[:5]))
    # h5dump's text too, but for its first line (the file's name).
    if shutil.which("h5dump"):
        da, db = (subprocess.run(["h5dump", p], capture_output=True, text=True).stdout
                  .split("\n", 1)[-1] for p in (path, twin))
        if da != db or not da:
            sys.exit("h5dump shows %s and %s differently" % (path, twin))
    pairs += 1
if "test_direct_vs_api" in " ".join(rest) or not rest:
    if pairs == 0:
        sys.exit("no direct/API file pairs were written")


def js_sample(files):
    """The direct files through jsfive and h5wasm, compared with h5py's view."""
    here = os.path.dirname(os.path.abspath(__file__))
    js_dir = os.path.join(here, "..", "js")
    node = shutil.which("node") or shutil.which("nodejs")
    if not files or not node or not all(
            os.path.isfile(os.path.join(js_dir, "node_modules", m, "package.json"))
            for m in ("jsfive", "h5wasm")):
        print("jsfive/h5wasm: not installed (tools/bootstrap.sh --test): sample not read")
        return
    # js_check's helpers take (and empty) a scratch folder from argv[1].
    scratch = os.path.join(folder, "js")
    sys.argv[1:] = [scratch]
    sys.path.insert(0, js_dir)
    import js_check  # noqa: E402
    os.makedirs(scratch, exist_ok=True)
    entries = [{"file": f, "name": os.path.basename(f), "objects": js_check.describe(f)}
               for f in files]
    expected = os.path.join(scratch, "expected.json")
    with open(expected, "w", encoding="utf-8") as fp:
        json.dump({"files": entries}, fp, ensure_ascii=False)
    p = subprocess.run([node, os.path.join(js_dir, "read_check.mjs"), expected], cwd=js_dir,
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("jsfive/h5wasm read the direct files otherwise than h5py:\n" + p.stdout[-3000:])
    print("jsfive/h5wasm: %d direct files read as h5py reads them" % len(files))


js_sample(sorted(glob.glob(os.path.join(folder, "diff-direct-*.h5"))))

# Block checksums (test_block_checksums): h5py reads the table, and Python's
# xxhash over h5py's bytes gives every entry; `nnh5 verify` names a flipped
# entry (test_block_damage).
blocks = 0
for path in sorted(glob.glob(os.path.join(folder, "blk-*.h5"))):
    import xxhash
    with h5py.File(path, "r") as f:
        ds = f["tensor"]
        data = ds[()].astype("<" + ds.dtype.str[1:]).tobytes()
        b = int(ds.attrs["nnh5_xxh3_block_bytes"])
        table = [int(v) for v in ds.attrs["nnh5_xxh3_blocks"]]
        if int(ds.attrs["nnh5_xxh3"]) != xxhash.xxh3_64_intdigest(data):
            sys.exit("%s: nnh5_xxh3 is not XXH3 of the data" % path)
    want = [xxhash.xxh3_64_intdigest(data[i:i + b]) for i in range(0, len(data), b)]
    if b != 16 << 20 or table != want:
        sys.exit("%s: block table %s (B %d), xxhash says %s" % (path, table, b, want))
    r = subprocess.run([tool, "verify", path], capture_output=True, text=True)
    if r.returncode != 0 or "block checksums ok" not in r.stdout:
        sys.exit("nnh5 verify %s did not check the block table: %s" % (path, r.stdout))
    blocks += 1
bad = os.path.join(folder, "blkbad-entry.h5")
if os.path.exists(bad):
    r = subprocess.run([tool, "verify", bad], capture_output=True, text=True)
    if r.returncode == 0 or "block 1 " not in r.stdout or "tensor" not in r.stdout:
        sys.exit("nnh5 verify %s: a flipped block checksum passed: %s%s" % (bad, r.stdout, r.stderr))
    os.unlink(bad)
    print("h5py + xxhash checked %d block tables; nnh5 verify named the flipped entry" % blocks)
# Left out: files of nnh5_save_tensor (`nnh5 verify` refuses a root of kind
# tensor), the file damaged on purpose, and h5py's own.
for path in sorted(glob.glob(os.path.join(folder, "*.h5"))):
    if os.path.basename(path) in ("serial.h5", "agree.h5", "damaged.h5", "h5py.h5"):
        continue
    r = subprocess.run([tool, "verify", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("nnh5 verify %s: %s%s" % (path, r.stdout, r.stderr))
# The Python module (tools/nnh5.py) loads the collective state dict, and the
# tool lists the collective checkpoint folder.
sd_path = os.path.join(folder, "sd.h5")
if os.path.exists(sd_path):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
    import nnh5
    sd = nnh5.load(sd_path, numpy=True)
    with h5py.File(sd_path, "r") as f:
        if list(sd) != ["layer.weight", "layer.bias"] or \
                sd["layer.weight"].tobytes() != f["layer/weight"][()].tobytes():
            sys.exit("nnh5.py loads another state dict from sd.h5")
ckpts = os.path.join(folder, "ckpts")
if os.path.isdir(ckpts):
    r = subprocess.run([tool, "ls", ckpts], capture_output=True, text=True)
    if r.returncode != 0 or "2 checkpoints" not in r.stdout:
        sys.exit("nnh5 ls %s: %s%s" % (ckpts, r.stdout, r.stderr))
print("h5py read %d sharded files as their serial twins and %d direct files as their API"
      " twins; nnh5 verify accepted all" % (checked, pairs))
if not rest and checked == 0:
    sys.exit("no sharded files were written")
shutil.rmtree(folder)
