"""Shared by the tests of tools/nnh5.py: paths, counted checks, the C helper, bit dumps.

Each test script is run as `test_X.py SCRATCH_DIR` by meson with
NNH5_PY_TOOLS (the tools/ folder), NNH5_PY_HELPER (py_helper) and
NNH5_NN_RUN (tests/nn's nn_run) in the environment. A script exits 77
(skipped) when h5py or numpy is missing, or torch when it needs it.
"""
import os
import shutil
import subprocess
import sys
import traceback

try:
    import numpy as np
    import h5py  # noqa: F401  (the tests import it from here)
except ImportError as e:  # pragma: no cover
    print(f"SKIP: h5py/numpy not available ({e})")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("NNH5_PY_TOOLS") or os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)
import nnh5  # noqa: E402  (tools/nnh5.py)

HELPER = os.environ.get("NNH5_PY_HELPER")
NN_RUN = os.environ.get("NNH5_NN_RUN")
TMP = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "tmp"))
shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)

N_CHECKS = 0
FAILURES = []


C_MODE = nnh5.backend()[0] == "libnnh5"  # saves and loads call libnnh5 (ctypes)


class pure:
    """with pure(): saves and loads inside go through h5py, in either mode (for tests of
    the h5py code's own internals, which replace its functions)."""

    def __enter__(self):
        self.saved = nnh5._CLIB
        nnh5._CLIB = False

    def __exit__(self, *exc):
        nnh5._CLIB = self.saved


def need_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        print(f"SKIP: torch not available ({e})")
        sys.exit(77)
    torch.set_num_threads(1)
    return torch


def check(ok, what, detail=""):
    """Count one check; print failures (and return ok)."""
    global N_CHECKS
    N_CHECKS += 1
    if not ok:
        FAILURES.append(what)
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))
    return ok


def expect_error(fn, exc_type, words, what):
    """fn() must raise exc_type with every word of words in its message; returns the message."""
    try:
        fn()
    except exc_type as e:
        msg = str(e)
        missing = [w for w in words if w not in msg]
        check(not missing, what, f"message {msg!r} lacks {missing}")
        return msg
    except Exception as e:  # the wrong kind of error
        check(False, what, f"raised {type(e).__name__}: {e}, expected {exc_type.__name__}")
        return None
    check(False, what, f"no error, expected {exc_type.__name__}")
    return None


def load_converter():
    """tools/nnh5-convert as a module, to call its functions without starting Python each time."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("nnh5_convert", os.path.join(TOOLS,
                                                                              "nnh5-convert"))
    spec = importlib.util.spec_from_loader("nnh5_convert", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def path(name):
    return os.path.join(TMP, name)


def helper(*args, check_rc=True):
    """Run py_helper; returns the CompletedProcess (a failed run is a failed check)."""
    p = subprocess.run([HELPER, *map(str, args)], capture_output=True, text=True)
    if check_rc:
        check(p.returncode == 0, f"py_helper {' '.join(map(str, args))}",
              f"exit {p.returncode}: {p.stderr.strip()}")
    return p


def parse_dump(text):
    """py_helper's dump lines as [(key, dtype, shape, stored checksum or None, bytes)]."""
    out = []
    for line in text.splitlines():
        key, dtype, shape, stored, data = line.split("\t")
        shape = tuple(int(x) for x in shape.split(",")) if shape else ()
        out.append((key, dtype, shape, None if stored == "-" else int(stored, 16),
                    bytes.fromhex(data)))
    return out


def bits(value):
    """(nnh5 dtype, shape, little-endian bytes) of a torch tensor or numpy array."""
    if type(value).__module__.startswith("torch"):
        import torch
        names = {torch.bool: "bool", torch.uint8: "uint8", torch.int8: "int8",
                 torch.int16: "int16", torch.int32: "int32", torch.int64: "int64",
                 torch.float16: "float16", torch.bfloat16: "bfloat16",
                 torch.float32: "float32", torch.float64: "float64",
                 torch.complex64: "complex64", torch.complex128: "complex128"}
        for n in nnh5.FLOAT8:
            if hasattr(torch, n):
                names[getattr(torch, n)] = n
        t = value.detach().contiguous()
        name = names[t.dtype]
        if name == "bfloat16":
            t = t.view(torch.int16)
        if name in nnh5.FLOAT8:
            t = t.view(torch.uint8)
        return name, tuple(value.shape), np.ascontiguousarray(t.numpy()).tobytes()
    a = np.asarray(value)
    name = nnh5._np_dtype_name(a.dtype)
    le = a.astype(np.bool_ if name == "bool" else a.dtype.newbyteorder("<"))
    return name, a.shape, le.tobytes()


def random_bits(rng, dtype_name, shape):
    """A numpy buffer of random bit patterns with float specials first (like py_helper's corpus)."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    buf_dtype = np.dtype(nnh5._BUF[dtype_name])
    raw = rng.integers(0, 256, size=n * buf_dtype.itemsize, dtype=np.uint8)
    a = raw.view(buf_dtype).copy()
    specials = {"float16": [0x8000, 0x7c00, 0xfc00, 0x7e01, 0x7c01, 0xffff, 0x0001],
                "bfloat16": [0x8000, 0x7f80, 0xff80, 0x7fc1, 0x7f81, 0xffff, 0x0001],
                "float32": [0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0x7f800001,
                            0xffffffff, 0x00000001],
                "float64": [0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000,
                            0x7ff8000000000001, 0x7ff0000000000001, 0xffffffffffffffff,
                            0x0000000000000001]}.get(dtype_name)
    if specials:
        ints = a.view(f"<u{buf_dtype.itemsize}")
        k = min(len(specials), n)
        ints[:k] = np.array(specials[:k], dtype=ints.dtype)
    if dtype_name == "bool":
        a = (a & 1).view(np.bool_)
    if dtype_name in nnh5.FLOAT8:  # numpy has none: the bits, marked
        a = nnh5.float8_array(a, dtype_name)
    return a.reshape(shape)


SHAPES = [(), (0,), (2, 0, 3), (5,), (3, 4), (7, 3, 5), (64, 80),
          tuple(2 if d % 6 == 5 else 1 for d in range(32))]


def torch_of(dtype_name, buf):
    """A torch tensor with the bits of the numpy buffer buf."""
    import torch
    if dtype_name == "bfloat16":
        return torch.from_numpy(buf.view("<i2").copy()).view(torch.bfloat16)
    return torch.from_numpy(buf.copy())


def torch_corpus(seed=1):
    """key -> tensor: every torch dtype x SHAPES, non-contiguous tensors, nested keys."""
    import collections
    import torch
    rng = np.random.default_rng(seed)
    sd = collections.OrderedDict()
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                 "float32", "float64"):
        for i, shape in enumerate(SHAPES):
            sd[f"{name}.t{i}"] = torch_of(name, random_bits(rng, name, shape))
    big = torch_of("float32", random_bits(rng, "float32", (64, 80)))
    sd["noncontig.transposed"] = big.t()
    sd["noncontig.strided"] = big[::3, 1::7]
    sd["noncontig.expanded"] = torch.arange(5, dtype=torch.int64).expand(4, 5)
    sd["noncontig.offset"] = big.view(-1)[17:17 + 600].view(20, 30)
    sd["noncontig.channels_last"] = torch_of("bfloat16", random_bits(
        rng, "bfloat16", (2, 3, 4, 5))).contiguous(memory_format=torch.channels_last)
    sd["noncontig.bool_t"] = torch_of("bool", random_bits(rng, "bool", (9, 7))).t()
    sd["param.weight"] = torch.nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
    # an order that sorts differently, deep nesting, a module's keys apart (so that the
    # order of nnh5_keys differs from a depth-first walk of the groups)
    for k in ("z.w", "layer10.w", "layer2.w", "a.b.c.d.e.f.g.h", "a.b.x", "enc.w", "dec.w",
              "enc.b"):
        sd[k] = torch.randn(2)
    return sd


def order_diff(got, want):
    """Where two key lists first differ, for a message."""
    got, want = list(got), list(want)
    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return f"first difference at {i}: {got[i:i + 3]} != {want[i:i + 3]} ({len(got)} vs " \
           f"{len(want)} keys)"


def same_tensors(want, got, what, numpy_bf16=False):
    """Same keys in the same order, same dtypes, shapes and bits (counted checks).

    numpy_bf16: got was loaded as numpy, which widens bfloat16 to float32.
    """
    if not check(list(got) == list(want), f"{what}: key order", order_diff(got, want)):
        return
    for k in want:
        wd, ws, wb = bits(want[k])
        gd, gs, gb = bits(got[k])
        if numpy_bf16 and wd == "bfloat16":
            wd, wb = "float32", (np.frombuffer(wb, "<u2").astype("<u4") << 16).tobytes()
        check((wd, ws, wb) == (gd, gs, gb), f"{what}: {k}",
              f"{gd} {gs} {gb[:16].hex()}..., expected {wd} {ws} {wb[:16].hex()}...")


def files_in(folder):
    return sorted(os.listdir(folder))


def flip_byte(file, offset):
    with open(file, "r+b") as fp:
        fp.seek(offset)
        b = fp.read(1)
        fp.seek(offset)
        fp.write(bytes([b[0] ^ 0x10]))


def run_part(fn):
    """Run one part of a test; an exception is a failed check (with its traceback), not the end."""
    try:
        fn()
    except Exception:
        traceback.print_exc()
        check(False, f"{fn.__name__} raised", traceback.format_exc().splitlines()[-1])


def run_parts(*parts):
    """run_part() each part, printing its count of checks and failures."""
    for part in parts:
        before, nfail = N_CHECKS, len(FAILURES)
        run_part(part)
        print(f"{part.__name__}: {N_CHECKS - before} checks, {len(FAILURES) - nfail} failed")


def finish(name):
    want = os.environ.get("NNH5_TEST_BACKEND")
    if want:  # meson runs every script in both modes: each must have run in its own
        got = nnh5.backend()
        check(got[0] == want, f"backend is {want}", f"nnh5.backend() = {got}")
        if want == "h5py":
            check(nnh5.calls["libnnh5"] == 0, "no call took the C library", str(nnh5.calls))
        print(f"backend {got[0]}: calls {nnh5.calls}")
    print(f"{name}: {N_CHECKS} checks, {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)
