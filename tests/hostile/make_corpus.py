#!/usr/bin/python3
"""Write the hostile-file corpus into OUTDIR (tests/hostile/test_hostile.c
loads every file and expects each to be refused with its own message).

Files that point elsewhere point into OUTDIR/elsewhere/: the strace check
(strace_check.py) proves nothing there is ever opened. Usage:
    make_corpus.py OUTDIR [STAMP]
"""
import ctypes
import ctypes.util
import os
import struct
import sys
import zlib

import h5py
import numpy as np


def plain(path, **kw):
    """A file like any h5py user's: one honest tensor 'w' beside the trap."""
    f = h5py.File(path, "w", **kw)
    f["w"] = np.arange(4, dtype=np.float32)
    return f


def elsewhere(out):
    d = os.path.join(out, "elsewhere")
    os.makedirs(d, exist_ok=True)
    with h5py.File(os.path.join(d, "target.h5"), "w") as g:
        g["x"] = np.arange(16, dtype=np.uint8)
        g.create_group("grp")["y"] = np.arange(4, dtype=np.uint8)
    with open(os.path.join(d, "raw.bin"), "wb") as r:
        r.write(bytes(range(64)))
    return d


def external_link(out, d):
    with plain(os.path.join(out, "external_link.h5")) as f:
        f["evil"] = h5py.ExternalLink(os.path.join(d, "target.h5"), "/x")
    with plain(os.path.join(out, "external_link_group.h5")) as f:
        f["evil"] = h5py.ExternalLink(os.path.join(d, "target.h5"), "/grp")


def external_storage(out, d):
    with plain(os.path.join(out, "external_storage.h5")) as f:
        f.create_dataset("raw", shape=(64,), dtype=np.uint8,
                         external=[(os.path.join(d, "raw.bin"), 0, 64)])
    # The classic: read a system file through external storage.
    with plain(os.path.join(out, "external_passwd.h5")) as f:
        f.create_dataset("passwd", shape=(64,), dtype=np.uint8,
                         external=[("/etc/passwd", 0, 64)])


def virtual(out, d):
    layout = h5py.VirtualLayout(shape=(16,), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(os.path.join(d, "target.h5"), "x", shape=(16,))
    with plain(os.path.join(out, "virtual.h5"), libver="latest") as f:
        f.create_virtual_dataset("vds", layout, fillvalue=0)


class H5ZClass2(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int), ("id", ctypes.c_int),
                ("encoder_present", ctypes.c_uint), ("decoder_present", ctypes.c_uint),
                ("name", ctypes.c_char_p), ("can_apply", ctypes.c_void_p),
                ("set_local", ctypes.c_void_p), ("filter", ctypes.c_void_p)]


FILTER_FN = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint, ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p))


def unknown_filter(out):
    """Register a do-nothing filter 32123 in the HDF5 h5py uses, write with it."""
    lib = ctypes.CDLL(h5py.h5z.__file__)  # h5py's extension links the HDF5 it uses
    hdf5 = None
    for name in ("hdf5_serial", "hdf5"):
        p = ctypes.util.find_library(name)
        if p:
            hdf5 = ctypes.CDLL(p)
            break
    del lib
    keep = FILTER_FN(lambda flags, cd_n, cd, nbytes, buf_size, buf: nbytes)
    cls = H5ZClass2(1, 32123, 1, 1, b"nnh5-test-unknown", None, None,
                    ctypes.cast(keep, ctypes.c_void_p))
    hdf5.H5Zregister.argtypes = [ctypes.c_void_p]
    if hdf5.H5Zregister(ctypes.byref(cls)) < 0:
        raise SystemExit("H5Zregister failed")
    with plain(os.path.join(out, "unknown_filter.h5")) as f:
        f.create_dataset("filtered", data=np.arange(256, dtype=np.float32), chunks=(64,),
                         compression=32123)
    unknown_filter.keep = (keep, cls)


def filter_params(out):
    """nnh5's own plugin filters with parameters nnh5 never writes (optional filters: HDF5
    stores the chunks raw when it cannot run them, so no plugin is needed to make these)."""
    for name, code, cd in (("blosc_params.h5", 32001, (2, 2, 4, 4096, 5, 1, 9)),
                           ("lz4_params.h5", 32004, (0x7fffffff,))):
        with plain(os.path.join(out, name)) as f:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((1024,))
            dcpl.set_filter(code, h5py.h5z.FLAG_OPTIONAL, cd)
            space = h5py.h5s.create_simple((4096,))
            did = h5py.h5d.create(f.id, b"x", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
            did.write(h5py.h5s.ALL, h5py.h5s.ALL, np.zeros(4096, dtype="<f4"))


def huge(out):
    with plain(os.path.join(out, "huge_2e62.h5")) as f:
        # 2^62 one-byte elements declared, nothing stored.
        f.create_dataset("huge", shape=(2**31, 2**31), dtype=np.uint8, chunks=(1, 1024))
    with plain(os.path.join(out, "huge_overflow.h5")) as f:
        # 2^62 eight-byte elements: the byte count overflows 64 bits.
        f.create_dataset("huge", shape=(2**31, 2**31), dtype=np.float64, chunks=(1, 1024))
    with plain(os.path.join(out, "sparse.h5")) as f:
        # 1 GiB declared, one 4 KiB chunk stored: HDF5 would fill the rest with zeros.
        d = f.create_dataset("sparse", shape=(2**28,), dtype=np.float32, chunks=(1024,))
        d[:1024] = 1


def bomb(out):
    """4 GiB of float32 zeros deflated into about 4 MB (1 MiB chunks, 1000:1)."""
    chunk = 1 << 18
    n = 4096
    packed = zlib.compress(bytes(4 * chunk), 9)
    with plain(os.path.join(out, "deflate_bomb.h5")) as f:
        d = f.create_dataset("bomb", shape=(chunk * n,), dtype=np.float32, chunks=(chunk,),
                             compression="gzip")
        for i in range(n):
            d.id.write_direct_chunk((i * chunk,), packed, 0)


def find_once(data, needle):
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        raise SystemExit("patch target not found exactly once")
    return at


def overlap(out):
    """Earliest format (no header checksums): b's data address patched to a's."""
    path = os.path.join(out, "overlap.h5")
    with h5py.File(path, "w", libver="earliest") as f:
        f.create_dataset("a", data=np.arange(2048, dtype=np.float32))
        f.create_dataset("b", data=-np.arange(2048, dtype=np.float32))
        a_off, b_off = f["a"].id.get_offset(), f["b"].id.get_offset()
    data = bytearray(open(path, "rb").read())
    at = find_once(data, struct.pack("<Q", b_off))
    data[at:at + 8] = struct.pack("<Q", a_off)
    open(path, "wb").write(data)
    # The same trick pointing past the end of the file.
    path2 = os.path.join(out, "outside.h5")
    with h5py.File(path2, "w", libver="earliest") as f:
        f.create_dataset("a", data=np.arange(2048, dtype=np.float32))
        f.create_dataset("b", data=-np.arange(2048, dtype=np.float32))
        b_off = f["b"].id.get_offset()
    data = bytearray(open(path2, "rb").read())
    at = find_once(data, struct.pack("<Q", b_off))
    data[at:at + 8] = struct.pack("<Q", len(data) + (1 << 20))
    open(path2, "wb").write(data)


def cycles(out):
    with plain(os.path.join(out, "cycle.h5")) as f:
        g = f.create_group("a")
        g["x"] = np.ones(2, dtype=np.float32)
        g["loop"] = g  # a hard link back to /a
    with plain(os.path.join(out, "soft_cycle.h5")) as f:
        f["s1"] = h5py.SoftLink("/s2")
        f["s2"] = h5py.SoftLink("/s1")


def names(out):
    with plain(os.path.join(out, "bad_utf8.h5")) as f:
        f.create_dataset(b"bad\xff\xfe", data=np.ones(2, dtype=np.float32))
    with plain(os.path.join(out, "control_name.h5")) as f:
        f.create_dataset("evil\x1b[31mred\x07", data=np.ones(2, dtype=np.float32))
    with plain(os.path.join(out, "long_name.h5")) as f:
        f.create_dataset("n" * 5000, data=np.ones(2, dtype=np.float32))
    with plain(os.path.join(out, "bad_utf8_attr.h5")) as f:
        f.attrs.create("nnh5_keys", [b"w\xff"], dtype=h5py.string_dtype("ascii"))


def many_groups(out, n=100000):
    with plain(os.path.join(out, "groups_100k.h5"), libver="latest") as f:
        gid = f.id
        for i in range(n):
            h5py.h5g.create(gid, b"g%d" % i)
    with plain(os.path.join(out, "deep.h5"), libver="latest") as f:
        g = f
        for i in range(100):
            g = g.create_group("d")
        g["x"] = np.ones(1, dtype=np.float32)


def soft_links(out, d):
    """Soft links whose target paths cross external links (HDF5 would follow them)."""
    target = os.path.join(d, "target.h5")
    # The external link hides under a reserved name that loads skip.
    with plain(os.path.join(out, "soft_via_external.h5")) as f:
        f["nnh5_hidden"] = h5py.ExternalLink(target, "/")
        f["s"] = h5py.SoftLink("/nnh5_hidden/x")
    # The external link lies outside the group being loaded (/model).
    with plain(os.path.join(out, "soft_outside_group.h5")) as f:
        f["elsewhere"] = h5py.ExternalLink(target, "/")
        m = f.create_group("model")
        m["bias"] = np.zeros(2, dtype=np.float32)
        m.create_group("hidden")["weight"] = h5py.SoftLink("/elsewhere/x")
    # What nnh5_load_tensor reads first: /tensor, itself a soft link.
    with h5py.File(os.path.join(out, "soft_tensor.h5"), "w") as f:
        f.attrs["nnh5_kind"] = "tensor"
        f["nnh5_ext"] = h5py.ExternalLink(target, "/")
        f["tensor"] = h5py.SoftLink("/nnh5_ext/x")
    # A chain of soft links whose last one crosses the external link.
    with plain(os.path.join(out, "soft_chain.h5")) as f:
        f["nnh5_ext"] = h5py.ExternalLink(target, "/")
        f["a"] = h5py.SoftLink("/b")
        f["b"] = h5py.SoftLink("/c")
        f["c"] = h5py.SoftLink("/nnh5_ext/x")
    # A relative soft link, resolved from the group that holds it.
    with plain(os.path.join(out, "soft_relative.h5")) as f:
        g = f.create_group("g")
        g["nnh5_sub"] = h5py.ExternalLink(target, "/grp")
        g["s"] = h5py.SoftLink("nnh5_sub/y")
    # Soft links to groups: one in this file, one through an external link.
    with plain(os.path.join(out, "soft_group.h5")) as f:
        f.create_group("g")["x"] = np.ones(2, dtype=np.float32)
        f["s"] = h5py.SoftLink("/g")
    with plain(os.path.join(out, "soft_group_external.h5")) as f:
        f["nnh5_ext"] = h5py.ExternalLink(target, "/")
        f["s"] = h5py.SoftLink("/nnh5_ext/grp")
    # A chain longer than any reader should follow (40 hops, all inside the file).
    with plain(os.path.join(out, "soft_long_chain.h5")) as f:
        for i in range(40):
            f["c%02d" % i] = h5py.SoftLink("/c%02d" % (i + 1))
        f["c40"] = np.ones(2, dtype=np.float32)
    # An external link under a reserved name, and nothing else pointing at it.
    with plain(os.path.join(out, "reserved_external.h5")) as f:
        f["nnh5_probe"] = h5py.ExternalLink(target, "/grp")


def aliases(out):
    """One 8 MiB dataset under 201 names (hard links in 10 groups): 1.6 GB if loaded naively."""
    with h5py.File(os.path.join(out, "aliases_200.h5"), "w") as f:
        data = f.create_dataset("data", data=np.ones(2 << 20, dtype=np.float32))
        for g in range(10):
            grp = f.create_group("g%d" % g)
            for i in range(20):
                grp["w%02d" % i] = data
    # Aliases nnh5 loads: a hard link and a soft link to a dataset in this file.
    with h5py.File(os.path.join(out, "aliases_ok.h5"), "w") as f:
        f["a"] = np.arange(4, dtype=np.float32)
        f["hard"] = f["a"]
        f["soft"] = h5py.SoftLink("/a")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    d = elsewhere(out)
    external_link(out, d)
    external_storage(out, d)
    virtual(out, d)
    unknown_filter(out)
    filter_params(out)
    huge(out)
    bomb(out)
    overlap(out)
    cycles(out)
    names(out)
    many_groups(out)
    soft_links(out, d)
    aliases(out)
    stamp = sys.argv[2] if len(sys.argv) > 2 else os.path.join(out, "stamp")
    with open(stamp, "w") as s:
        s.write("ok\n")


if __name__ == "__main__":
    main()
