"""nnh5.py - read and write nnh5 files from Python (h5py, numpy; torch optional).

nnh5 files are plain HDF5 files in the layout doc/FORMAT.md describes. This
module writes and reads exactly that layout, so files go freely between
PyTorch and the nnh5 C library:

    nnh5.save_state_dict(net.state_dict(), "mlp.h5")     # PyTorch -> file
    net.load_state_dict(nnh5.load_state_dict("mlp.h5"))  # file -> PyTorch

API (doc strings below say more):
    save_state_dict(state_dict, path)  load_state_dict(path) -> OrderedDict
    save_model(module, path, probe_input=None)  load_model(path) -> nn.Sequential
    save(obj, path)  load(path)          a tensor, a list or a dict, like torch.save/load

Values may be torch tensors or numpy arrays; torch is imported only when
needed, so the module works with numpy alone. Loading returns torch tensors
when torch is installed, numpy arrays when it is not (or with numpy=True).

Checksums: with Debian's python3-xxhash installed, every tensor written gets
the attribute nnh5_xxh3 (XXH3-64 of its little-endian bytes) and every
tensor read is verified against it (ChecksumError on a mismatch). Without
xxhash, files are written without checksums and loading cannot verify them
(a RuntimeWarning says so once; require_checksums=True then raises).

Saving is atomic as in the C library: a temporary file beside the target
(".<name>.nnh5-tmp-XXXXXX"), flushed, fsynced, renamed over the target, and
the folder fsynced. A failed save leaves the previous file and no temporary
file. Loading follows the C library's load policy, with the same limits
under the same names (LoadOptions; keyword arguments of every loader): no
other file is opened (external links, soft links through them, external
raw storage and virtual datasets are refused), filters other than
deflate, shuffle and fletcher32, compression bombs, sparse and overlapping
data are refused (UnsafeError), sizes and counts past the caps too
(LimitError), and every error is an nnh5.Error subclass (doc/PYTHON.md).
"""
import bisect
import collections
import collections.abc
import ctypes
import errno
import functools
import math
import os
import re
import secrets
import stat
import string
import sys
import warnings

import numpy as np
import h5py
from h5py import h5a, h5d, h5f, h5g, h5l, h5o, h5p, h5s, h5t, h5z
try:  # h5py's lock around HDF5: the C library's HDF5 calls take it too
    from h5py._objects import phil as _HDF5_LOCK
except ImportError:  # pragma: no cover
    import threading
    _HDF5_LOCK = threading.RLock()

try:
    import xxhash
except ImportError:  # Debian: apt install python3-xxhash
    xxhash = None

__version__ = "0.1.0"
__all__ = ["save_state_dict", "load_state_dict", "save_model", "load_model", "save", "load",
           "LoadOptions", "Error", "FormatError", "ChecksumError", "UnsafeError",
           "UnsupportedError", "InvalidError", "ShapeError", "LimitError", "NotFoundError",
           "NoMemoryError", "FileError", "HDF5Error", "HAVE_XXHASH", "LAYER_TYPES",
           "float8_array", "FLOAT8",
           "COMPRESSION", "compression_filters", "backend", "calls"]

FORMAT_VERSION = 1
HAVE_XXHASH = xxhash is not None
ALIGNMENT = 4096       # larger ones: contiguous, aligned to this
MAX_NDIM = 32
MAX_DEPTH = 64         # deepest group nesting a reader follows
TMP_MARK = ".nnh5-tmp-"
_TMP_BASE_MAX = 255 - 1 - len(TMP_MARK) - 6  # lib/store/atomic.h
LAYER_TYPES = ("Linear", "LazyLinear", "ReLU", "Sigmoid", "Tanh", "GELU", "Flatten", "Dropout")
_ORDER = h5p.CRT_ORDER_TRACKED | h5p.CRT_ORDER_INDEXED
_ALLOWED_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32004: "LZ4", 32001: "blosc"}
# Compression profiles (doc/FORMATS.md, "Compression"), as the C library writes them
# (lib/store/filters.c): the plugin filter used when installed, else shuffle + deflate.
COMPRESSION = ("none", "fast", "archive")
_LZ4, _BLOSC = 32004, 32001
_BLOSC_CD = (0, 0, 0, 0, 5, 1, 5)   # four set by the filter, level 5, byte shuffle, zstd
_DEFLATE_LEVEL = {"fast": 1, "archive": 6}
_COMPRESS_MIN_BYTES = 1024          # smaller tensors stay contiguous
_CHUNK_BYTES = 1 << 20


def _filter_problem(code, cd):
    """None when nnh5 trusts filter code with parameters cd (lib/store/filters.c), else why."""
    n = len(cd)
    if code == 2:
        return None if n <= 1 else "shuffle with unexpected parameters"
    if code == 3:
        return None if n == 0 else "fletcher32 with unexpected parameters"
    if code == 1:
        return None if n == 1 and cd[0] <= 9 else "deflate with parameters outside 0..9"
    if code == _LZ4:
        if n > 1 or (n == 1 and cd[0] > 1 << 30):
            return "LZ4 with parameters nnh5 does not write"
    elif code == _BLOSC:
        if n > 7 or (n > 4 and cd[4] > 9) or (n > 5 and cd[5] > 2) or (n > 6 and cd[6] > 5):
            return "blosc with parameters nnh5 does not write"
    else:
        return ("a filter nnh5 does not write (allowed: deflate, shuffle, fletcher32, LZ4 "
                "32004, blosc 32001)")
    if not h5z.filter_avail(code):
        return ("LZ4 (32004), whose plugin is not installed (Debian: hdf5-filter-plugin)"
                if code == _LZ4 else "blosc (32001), whose plugin is not installed (Debian: "
                "hdf5-filter-plugin-blosc-serial)")
    return None


def compression_filters(profile):
    """The filters a profile writes on this machine, as nnh5_compression_filters() says:
    "none", "shuffle+lz4" or "shuffle+deflate(1)" (fast), "blosc(zstd,5,shuffle)" or
    "shuffle+deflate(6)" (archive)."""
    if profile == "none":
        return "none"
    if profile == "fast":
        return "shuffle+lz4" if h5z.filter_avail(_LZ4) else "shuffle+deflate(1)"
    if profile == "archive":
        return "blosc(zstd,5,shuffle)" if h5z.filter_avail(_BLOSC) else "shuffle+deflate(6)"
    raise InvalidError(f"unknown compression profile {profile!r} (known: none, fast, archive)")


def _chunk_shape(shape, elsize):
    """Chunks of whole rows, at most 1 MiB (lib/store/filters.c, chunk_shape)."""
    room = _CHUNK_BYTES // elsize
    chunk = [0] * len(shape)
    for i in range(len(shape) - 1, -1, -1):
        d = shape[i] or 1
        if d <= room:
            chunk[i] = d
            room //= d
        else:
            chunk[i] = room or 1
            room = 1
    return tuple(chunk)


# ---------------------------------------------------------------- errors

class Error(Exception):
    """Base of the errors this module raises; status is the C library's status name."""
    status = "NNH5_ERR"


class FormatError(Error):
    """The file is not what was asked for, or is damaged."""
    status = "NNH5_ERR_FORMAT"


class ChecksumError(Error):
    """A tensor's data does not match its stored checksum (or has none when one is required)."""
    status = "NNH5_ERR_CHECKSUM"


class UnsafeError(Error):
    """The file would make the reader open other files or run unknown filters."""
    status = "NNH5_ERR_UNSAFE"


class UnsupportedError(Error, TypeError):
    """An object, dtype, datatype or module nnh5 does not store or rebuild."""
    status = "NNH5_ERR_TYPE"


class InvalidError(Error, ValueError):
    """A key, name or argument that cannot be stored."""
    status = "NNH5_ERR_INVALID"


class ShapeError(Error, ValueError):
    """Parameters that do not fit a model's architecture (missing, unexpected, mis-shaped)."""
    status = "NNH5_ERR_SHAPE"


class LimitError(Error, OverflowError):
    """A declared size that overflows, or a size or count past a limit of the load policy."""
    status = "NNH5_ERR_OVERFLOW"


class NotFoundError(Error, FileNotFoundError):
    """The file does not exist (a FileNotFoundError too)."""
    status = "NNH5_ERR_NOT_FOUND"


class NoMemoryError(Error, MemoryError):
    """An allocation failed below the limits (a MemoryError too)."""
    status = "NNH5_ERR_NOMEM"


class FileError(Error, OSError):
    """The operating system refused to open or read the file (an OSError too)."""
    status = "NNH5_ERR_IO"


class HDF5Error(Error):
    """An HDF5 call failed for a reason not covered by the other errors."""
    status = "NNH5_ERR_HDF5"


# ------------------------------------------------------------- optional torch

_TORCH = None


def _torch(required=None):
    """torch if it can be imported, else None (or UnsupportedError naming `required`)."""
    global _TORCH
    if _TORCH is None:
        try:
            import torch
            _TORCH = torch
        except ImportError:
            _TORCH = False
    if _TORCH is False:
        if required:
            raise UnsupportedError(f"{required} needs PyTorch (Debian: apt install python3-torch)")
        return None
    return _TORCH


def _is_torch_tensor(x):
    torch = sys.modules.get("torch")  # a torch tensor can only exist once torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


_WARNED_NO_XXHASH = False


def _warn_no_xxhash():
    global _WARNED_NO_XXHASH
    if not _WARNED_NO_XXHASH:
        _WARNED_NO_XXHASH = True
        warnings.warn("nnh5: python3-xxhash is not installed: stored checksums are not verified",
                      RuntimeWarning, stacklevel=3)


# ------------------------------------------------------------------ dtypes

# nnh5 dtype -> numpy dtype of the little-endian buffer read and written
_BUF = {"bool": "<u1", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
        "uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
        "float16": "<f2", "bfloat16": "<u2", "float32": "<f4", "float64": "<f8",
        "float8_e4m3fn": "<u1", "float8_e5m2": "<u1", "complex64": "<c8", "complex128": "<c16"}
DTYPES = tuple(_BUF)
FLOAT8 = ("float8_e4m3fn", "float8_e5m2")
# (sign, exponent position, exponent size, mantissa position, mantissa size), bias
_FLOAT_FIELDS = {"float16": ((15, 10, 5, 0, 10), 15), "bfloat16": ((15, 7, 8, 0, 7), 127),
                 "float8_e4m3fn": ((7, 3, 4, 0, 3), 7), "float8_e5m2": ((7, 2, 5, 0, 2), 15)}


def float8_array(raw, name):
    """A numpy uint8 array holding float8 bits, marked as float8 dtype name.

    numpy has no float8: nnh5 hands float8 data out as its raw bytes with
    the dtype's metadata {"nnh5_dtype": name}, and saves such arrays as
    float8 again. raw: anything numpy turns into uint8 (the bits)."""
    if name not in FLOAT8:
        raise InvalidError(f"float8_array: {name!r} is not one of {', '.join(FLOAT8)}")
    return np.asarray(raw, dtype=np.uint8).view(np.dtype(np.uint8, metadata={"nnh5_dtype": name}))


def _h5_type(name):
    """The HDF5 file (and memory) type of an nnh5 dtype, as doc/FORMAT.md defines it."""
    if name == "bool":
        t = h5t.enum_create(h5t.STD_I8LE)
        t.enum_insert(b"FALSE", 0)
        t.enum_insert(b"TRUE", 1)
        return t
    if name in _FLOAT_FIELDS:  # float16 as h5py; bfloat16, float8 with their fields
        fields, bias = _FLOAT_FIELDS[name]
        t = h5t.IEEE_F32LE.copy()
        t.set_fields(*fields)
        t.set_size(1 if name in FLOAT8 else 2)
        t.set_ebias(bias)
        return t
    if name in ("complex64", "complex128"):  # h5py's complex: compound {r, i}
        part = h5t.IEEE_F32LE if name == "complex64" else h5t.IEEE_F64LE
        t = h5t.create(h5t.COMPOUND, 2 * part.get_size())
        t.insert(b"r", 0, part)
        t.insert(b"i", part.get_size(), part)
        return t
    if name == "float32":
        return h5t.IEEE_F32LE.copy()
    if name == "float64":
        return h5t.IEEE_F64LE.copy()
    bits = np.dtype(_BUF[name]).itemsize * 8
    return getattr(h5t, f"STD_{'U' if name[0] == 'u' else 'I'}{bits}LE").copy()


@functools.lru_cache(maxsize=None)
def _torch_dtypes(torch):
    """torch dtype -> nnh5 dtype name (worked out once: it is asked for every tensor)."""
    names = {torch.bool: "bool", torch.uint8: "uint8", torch.int8: "int8",
             torch.int16: "int16", torch.int32: "int32", torch.int64: "int64",
             torch.float16: "float16", torch.bfloat16: "bfloat16",
             torch.float32: "float32", torch.float64: "float64",
             torch.complex64: "complex64", torch.complex128: "complex128"}
    for n in ("uint16", "uint32", "uint64") + FLOAT8:  # torch >= 2.3 (uint), >= 2.1 (float8)
        if hasattr(torch, n):
            names[getattr(torch, n)] = n
    return names


def _np_dtype_name(dt):
    """The nnh5 dtype of a numpy dtype, or None."""
    if dt.kind == "b":
        return "bool"
    if dt.kind == "u" and dt.itemsize == 1 and dt.metadata \
            and dt.metadata.get("nnh5_dtype") in FLOAT8:  # float8_array()
        return dt.metadata["nnh5_dtype"]
    if dt.kind in "iu" and dt.itemsize in (1, 2, 4, 8):
        return ("u" if dt.kind == "u" else "") + f"int{dt.itemsize * 8}"
    if dt.kind == "f" and dt.itemsize in (2, 4, 8):
        return f"float{dt.itemsize * 8}"
    if dt.kind == "c" and dt.itemsize in (8, 16):
        return f"complex{dt.itemsize * 8}"
    return None


def _check_bool(raw, where, error):
    """The bool rule (lib/core/tensor.c, nnh5__check_bool): every byte of bool data is 0 or 1.

    raw: the data as a numpy uint8 array. Raises error naming the first
    other element: readers refuse such data (FormatError), writers never
    store it (InvalidError).
    """
    if raw.size and int(raw.max()) > 1:  # no copy in the common case
        flat = raw.reshape(-1)
        i = int(np.argmax(flat > 1))
        raise error(f"{where} is bool but element {i} holds the byte 0x{int(flat[i]):02x} "
                    "(a bool is 0 or 1)")


def _check_value(value, where):
    """Refuse values that are not tensors of a dtype nnh5 stores, before writing anything."""
    if _is_torch_tensor(value):
        torch = sys.modules["torch"]
        if value.layout != torch.strided:
            raise UnsupportedError(f"{where}: a {value.layout} tensor cannot be stored "
                                   "(convert it with .to_dense())")
        if value.dtype not in _torch_dtypes(torch):
            raise UnsupportedError(f"{where}: dtype {value.dtype} is not one nnh5 stores "
                                   f"({', '.join(DTYPES)})")
        if value.device.type == "meta":
            raise UnsupportedError(f"{where}: a tensor on the meta device has no data")
        if value.dim() > MAX_NDIM:
            raise UnsupportedError(f"{where}: rank {value.dim()} exceeds nnh5's {MAX_NDIM}")
        if value.dtype == torch.bool:
            _check_bool(value.detach().cpu().view(torch.uint8).numpy(), f"{where}: tensor",
                        InvalidError)
        return
    if isinstance(value, (np.ndarray, np.generic)):
        dt = np.asarray(value).dtype
        if _np_dtype_name(dt) is None:
            raise UnsupportedError(f"{where}: numpy dtype {dt} is not one nnh5 stores "
                                   f"({', '.join(DTYPES)})")
        if np.ndim(value) > MAX_NDIM:
            raise UnsupportedError(f"{where}: rank {np.ndim(value)} exceeds nnh5's {MAX_NDIM}")
        if dt.kind == "b":
            _check_bool(np.asarray(value).view(np.uint8), f"{where}: array", InvalidError)
        return
    raise UnsupportedError(f"{where}: cannot store a {type(value).__module__}."
                           f"{type(value).__qualname__}: nnh5 stores tensors "
                           "(torch.Tensor or numpy arrays)")


def _torch_dense(value):
    """(nnh5 dtype, torch, the tensor's data on the CPU, contiguous: value's own memory when
    it is so already) of a checked torch tensor."""
    torch = sys.modules["torch"]
    t = value.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    # a lazily conjugated or negated view (x.conj(), x.conj().imag): its values, not its memory
    return _torch_dtypes(torch)[value.dtype], torch, \
        t.resolve_conj().resolve_neg().contiguous()


def _to_buffer(value):
    """(nnh5 dtype, C-contiguous little-endian numpy buffer) of a checked tensor or array."""
    if _is_torch_tensor(value):
        name, torch, t = _torch_dense(value)
        if name == "bfloat16":
            t = t.view(torch.int16)
        if name in FLOAT8:
            t = t.view(torch.uint8)
        a = t.numpy()
        return name, a.view("<u1") if name == "bool" else a.astype(_BUF[name], copy=False)
    a = np.asarray(value)
    name = _np_dtype_name(a.dtype)
    if name == "bool":
        a = a.astype(np.bool_, copy=False).view("<u1")
    else:
        a = a.astype(_BUF[name], copy=False)  # big-endian input becomes little-endian
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    return name, a


def _tie_key(value):
    """What makes two values one tensor under two names (doc/FORMATS.md, "Tied weights"): the
    same memory, dtype, shape and strides, as tied parameters (GPT-2's wte and lm_head) are.
    None for empty values, which have nothing to share."""
    if _is_torch_tensor(value):
        if value.numel() == 0:
            return None
        return ("torch", value.device, value.data_ptr(), value.dtype, value.shape,
                value.stride())
    if isinstance(value, np.ndarray) and value.size:
        return ("numpy", value.__array_interface__["data"][0], value.dtype.str, value.shape,
                value.strides)
    return None


def _share(value):
    """A second name of a loaded tensor: a new tensor (or array) object on the same memory."""
    return value.view() if isinstance(value, np.ndarray) else value.view(value.shape)


def _describe(did):
    """(type, type class, element size, shape or None for a null dataspace) of an open
    dataset: what the load policy and the read both need, asked of HDF5 once."""
    ftype, space = did.get_type(), did.get_space()
    shape = None if space.get_simple_extent_type() == h5s.NULL else space.shape
    return ftype, ftype.get_class(), ftype.get_size(), shape


def _describe_type(tid):
    """What an HDF5 type nnh5 does not load is, for an error message."""
    cls = tid.get_class()
    size = tid.get_size()
    if cls == h5t.STRING:
        return "string (%s)" % ("variable-length" if tid.is_variable_str() else "fixed-length")
    names = {h5t.INTEGER: "integer", h5t.FLOAT: "float", h5t.TIME: "time",
             h5t.BITFIELD: "bitfield", h5t.OPAQUE: "opaque", h5t.COMPOUND: "compound",
             h5t.REFERENCE: "reference", h5t.ENUM: "enum", h5t.VLEN: "variable-length sequence",
             h5t.ARRAY: "array"}
    if cls in (h5t.COMPOUND, h5t.ENUM):
        return f"{names[cls]} of {tid.get_nmembers()} members, {size} bytes"
    return f"{names.get(cls, 'unknown class')} of {size} bytes"


def _is_bool_enum(tid):
    """h5py's bool, the one type that loads as bool (doc/FORMAT.md, "bool").

    An enum over a signed 8-bit integer (1 byte, all 8 bits) with exactly two
    members, FALSE = 0 and TRUE = 1 (lib/store/h5util.c, is_bool_enum).
    """
    if tid.get_nmembers() != 2:
        return False
    base = tid.get_super()
    if base.get_class() != h5t.INTEGER or base.get_size() != 1 \
            or base.get_sign() != h5t.SGN_2 or base.get_precision() != 8 \
            or base.get_offset() != 0:
        return False
    try:
        return tid.enum_valueof(b"FALSE") == 0 and tid.enum_valueof(b"TRUE") == 1
    except (KeyError, ValueError, RuntimeError):
        return False


def _dtype_of(tid, cls=None, size=None):
    """The nnh5 dtype of an HDF5 type (any byte order), or None. cls, size: its class and
    size, when known already."""
    if cls is None:
        cls, size = tid.get_class(), tid.get_size()
    if cls == h5t.INTEGER and size in (1, 2, 4, 8):
        return ("u" if tid.get_sign() == h5t.SGN_NONE else "") + f"int{size * 8}"
    if cls == h5t.FLOAT:
        if size in (4, 8):
            return f"float{size * 8}"
        if size in (1, 2):
            layout = (tuple(tid.get_fields()), tid.get_ebias())
            for name, fields in _FLOAT_FIELDS.items():
                if layout == fields and size == (1 if name in FLOAT8 else 2):
                    return name
    if cls == h5t.COMPOUND and tid.get_nmembers() == 2 \
            and [tid.get_member_name(k) for k in (0, 1)] == [b"r", b"i"]:
        parts = [_dtype_of(tid.get_member_type(k)) for k in (0, 1)]
        if parts[0] == parts[1] and parts[0] in ("float32", "float64"):
            return "complex64" if parts[0] == "float32" else "complex128"
    if cls == h5t.ENUM and _is_bool_enum(tid):
        return "bool"
    return None


# ------------------------------------------------------------------ keys

def _key_bytes(key, where):
    if not isinstance(key, str):
        raise InvalidError(f"{where}: key {key!r} is a {type(key).__name__}, not a str")
    try:
        b = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidError(f"{where}: key {key!r} is not valid UTF-8") from None
    if b"\0" in b:
        raise InvalidError(f"{where}: key {key!r} contains a NUL character")
    return b


MAX_NAME = 1024  # bytes in one link name: the load policy's default max_name_length
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _name_problem(b, max_len=MAX_NAME):
    """The rule for link names, as in the C library (lib/store/policy.c, nnh5__name_problem):
    at most max_len bytes, valid UTF-8, no control characters. None, or why not. Saving
    applies it with MAX_NAME, so a load with the default limits returns what was saved."""
    if len(b) > max_len:
        return f"longer than the limit of names ({max_len} bytes)"
    if _CONTROL.search(b):
        return "made with control characters"
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    return None


def _check_link_name(b, where, what):
    """Refuse at save time a name that loading would refuse: saved names load unchanged."""
    why = _name_problem(b)
    if why:
        shown = b[:64].decode("utf-8", "backslashreplace").encode("unicode_escape").decode()
        raise InvalidError(f"{where}: {what} '{shown}' is {why}: refused, as loading would "
                           "refuse it")


def _check_dict_keys(keys, where):
    for key in keys:
        _check_link_name(_key_bytes(key, where), where, "dict key")
        if not key or "/" in key or key in (".", ".."):
            raise InvalidError(f"{where}: key '{key}' cannot be stored (keys must be "
                               "non-empty, without '/', and not '.' or '..')")
        if key.startswith("nnh5_"):
            raise InvalidError(f"{where}: key '{key}' is reserved (nnh5_*)")


def _check_state_keys(keys, where):
    """doc/FORMAT.md's state-dict key rules, checked on every key before anything is written."""
    present = set(keys)
    named = set()  # components whose name passed: a model repeats a few of them many times
    for key in keys:
        b = _key_bytes(key, where)
        if not key or "/" in key or key[0] == "." or key[-1] == "." or ".." in key:
            raise InvalidError(f"{where}: key '{key}' cannot be stored (keys are non-empty "
                               "names separated by single dots, without '/')")
        comps = key.split(".")
        for c in comps:
            if c not in named:
                _check_link_name(c.encode("utf-8"), where, "state dict key component")
                named.add(c)
        if len(comps) > MAX_DEPTH + 1 or len(b) >= 4096 \
                or (len(b) > 255 and any(len(c.encode()) > 255 for c in comps)):
            raise InvalidError(f"{where}: key '{key}' is nested too deeply or has a component "
                               "longer than 255 bytes")
        if "nnh5_" in key and any(c.startswith("nnh5_") for c in comps):
            raise InvalidError(f"{where}: key '{key}' uses a reserved name (nnh5_*)")
        end = key.find(".")
        while end > 0:
            prefix = key[:end]
            if prefix in present:
                raise InvalidError(f"{where}: keys '{prefix}' and '{key}' conflict ('{prefix}' "
                                   "would be both a tensor and a module)")
            end = key.find(".", end + 1)


def _check_attrs(attrs, where):
    for name, v in (attrs or {}).items():
        _key_bytes(name, where)
        if not name or name.startswith("nnh5_"):
            raise InvalidError(f"{where}: attribute name '{name}' is empty or reserved (nnh5_*)")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, float, np.integer,
                                                                 np.floating)):
            raise UnsupportedError(f"{where}: attribute '{name}': a {type(v).__name__}; "
                                   "attributes are str, int or float")
        if isinstance(v, (int, np.integer)) and not -2**63 <= int(v) < 2**63:
            raise InvalidError(f"{where}: attribute '{name}': {v} does not fit in int64")
        if isinstance(v, str):
            _key_bytes(v, where)


# ------------------------------------------------------------ atomic commit

class _AtomicPath:
    """A temporary file beside `path`, renamed over it on commit(), removed on abort().

    The protocol and the rules of the C library (lib/store/atomic.c, doc/SAVING.md):
    a symbolic link at `path` is followed (the file it leads to is replaced, the
    link stays); a folder, device, FIFO or socket is refused (InvalidError), and
    so is an existing file the process may not write (PermissionError), before
    anything is written; the temporary file gets the replaced file's mode, owner
    and group (as far as the process may give them) before any data is written,
    new files the usual 0666 less the umask. commit() fsyncs it, renames it over
    the target and fsyncs the folder (durable=True).
    """

    def __init__(self, path, durable=True):
        old = self.judge(path)
        self.durable = durable
        folder, base = os.path.split(self.target)
        self.folder = folder or "."
        # a name too long for the temporary name is cut there (NAME_MAX is 255 bytes)
        short = os.fsencode(base)[:_TMP_BASE_MAX]
        short = os.fsdecode(short) if os.fsencode(base) != short else base
        alphabet = string.ascii_letters + string.digits
        for _ in range(100):
            suffix = "".join(secrets.choice(alphabet) for _ in range(6))
            tmp = os.path.join(folder, "." + short + TMP_MARK + suffix)
            try:
                # over an existing file: 0600 until it has the old owner and mode, so
                # nobody the old file kept out can open it meanwhile
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o666 if old is None else 0o600)
            except FileExistsError:
                continue
            except OSError as e:
                raise OSError(e.errno, f"save '{self.shown}': cannot create a temporary file: "
                              f"{e.strerror}") from None
            self.tmp = tmp
            try:
                if old is not None:
                    self._adopt(fd, old)
            except BaseException:
                os.close(fd)
                self.abort()
                raise
            os.close(fd)
            return
        raise OSError(errno.EEXIST, f"save '{self.shown}': no free temporary file name")

    def judge(self, path):
        """Follow path's links to the file a save replaces and refuse what may not be
        replaced (the checks of __init__ before anything is created; the C library's save
        makes the same ones, but this way both paths raise the same exceptions)."""
        self.shown = os.fspath(path)
        if isinstance(self.shown, bytes):
            self.shown = os.fsdecode(self.shown)
        self.target = self._follow_links(self.shown)
        if not os.path.split(self.target)[1]:
            raise InvalidError(f"save '{self.shown}': the path names a folder")
        return self._check_target()

    @classmethod
    def check(cls, path):
        """judge() path without creating anything."""
        cls.__new__(cls).judge(path)

    def _follow_links(self, path):
        cur = path
        for _ in range(40):
            try:
                if not stat.S_ISLNK(os.lstat(cur).st_mode):
                    return cur
            except FileNotFoundError:
                return cur
            link = os.readlink(cur)
            cur = link if os.path.isabs(link) else os.path.join(os.path.dirname(cur), link)
        raise OSError(errno.ELOOP, f"save '{path}': cannot follow the link '{cur}': "
                      f"{os.strerror(errno.ELOOP)}")

    def _check_target(self):
        """The replaced file's stat, None for a new file; refuses what may not be replaced."""
        try:
            st = os.lstat(self.target)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise InvalidError(f"save '{self.shown}': '{self.target}' is "
                               f"{_file_kind(st.st_mode)}: only regular files are replaced")
        if not os.access(self.target, os.W_OK, effective_ids=True):
            raise PermissionError(errno.EACCES, f"save '{self.shown}': '{self.target}' (mode "
                                  f"{stat.S_IMODE(st.st_mode):04o}) is not writable by this "
                                  "process: refused, the file is left as it is")
        return st

    def _adopt(self, fd, old):
        cur = os.fstat(fd)
        if (cur.st_uid, cur.st_gid) != (old.st_uid, old.st_gid):
            try:
                os.fchown(fd, old.st_uid, old.st_gid)
            except PermissionError:  # not root: keep the group if we belong to it
                try:
                    os.fchown(fd, -1, old.st_gid)
                except PermissionError:
                    pass
        os.fchmod(fd, stat.S_IMODE(old.st_mode))

    def commit(self):
        try:
            if self.durable:
                fd = os.open(self.tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise
        self.tmp = None
        if self.durable:  # the rename is durable once the folder entry is on disk
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def abort(self):
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


# ------------------------------------------------------------------ writing

class _Writer:
    """A new nnh5 file at a temporary path; close() commits, abort() discards."""

    def __init__(self, path, durable=True, compression="none"):
        if compression not in COMPRESSION:
            raise InvalidError(f"save '{os.fspath(path)}': unknown compression profile "
                               f"{compression!r} (known: none, fast, archive)")
        self.compression = compression
        self.atomic = _AtomicPath(path, durable)
        self.path = self.atomic.shown
        self.file = None
        try:
            fapl = h5p.create(h5p.FILE_ACCESS)
            fapl.set_libver_bounds(h5f.LIBVER_V18, h5f.LIBVER_V18)  # checksummed metadata
            fapl.set_alignment(ALIGNMENT, ALIGNMENT)
            fapl.set_fclose_degree(h5f.CLOSE_STRONG)
            # No sieve buffer: tensor data goes to the file in H5Dwrite, so a failed write
            # (a full disk) fails there, not later when h5py releases the dataset and
            # HDF5's error would be lost.
            fapl.set_sieve_buf_size(0)
            fcpl = h5p.create(h5p.FILE_CREATE)
            fcpl.set_link_creation_order(_ORDER)
            fcpl.set_attr_creation_order(_ORDER)
            fcpl.set_obj_track_times(False)  # no modification times: same content, same bytes
            fid = h5f.create(os.fsencode(self.atomic.tmp), h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
            self.file = h5py.File(fid)
            # Names are UTF-8 and say so (as h5py's own lcpl does): readers that honour
            # the character set would show non-ASCII names garbled otherwise.
            self.lcpl = h5p.create(h5p.LINK_CREATE)
            self.lcpl.set_char_encoding(h5t.CSET_UTF8)
            self.gcpl = h5p.create(h5p.GROUP_CREATE)
            self.gcpl.set_link_creation_order(_ORDER)
            self.gcpl.set_attr_creation_order(_ORDER)
            self.gcpl.set_obj_track_times(False)
            self.dcpl_contig = h5p.create(h5p.DATASET_CREATE)
            self.dcpl_contig.set_layout(h5d.CONTIGUOUS)
            self.dcpl_contig.set_fill_time(h5d.FILL_TIME_NEVER)
            self.dcpl_contig.set_alloc_time(h5d.ALLOC_TIME_LATE)
            self.dcpl_contig.set_obj_track_times(False)
            self.types = {}
            # HDF5 copies dataspaces into what it creates: one per shape serves every tensor
            self.spaces = {}
            self.scalar = h5s.create(h5s.SCALAR)
            # _tie_key -> (group, name) of the first name written; no dataset is held open
            self.ties = {}
            self.root = h5g.open(self.file.id, b"/")
            self.int_attr(self.root, "nnh5_format_version", FORMAT_VERSION)
            self.str_attr(self.root, "nnh5_writer",
                          f"nnh5 {__version__} (nnh5.py, h5py {h5py.version.version})")
        except BaseException:
            self.abort()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return False
        self.abort()
        if issubclass(exc_type, RuntimeError):  # an HDF5 failure h5py does not call OSError
            raise _io_error(self.path, "writing", exc) from exc
        return False

    def close(self):
        try:
            self.root = None
            self.file.flush()  # a failing flush (a full disk) is an abort, not a half-close
            self.file.close()
            self.file = None
        except BaseException as e:
            self.abort()
            if isinstance(e, (OSError, RuntimeError)):
                raise _io_error(self.path, "writing the file", e) from e
            raise
        self.atomic.commit()

    def abort(self):
        if self.file is not None:
            self.root = None
            # After a failed write HDF5 1.10 still holds dirty metadata that it flushes on
            # close; when that flush fails too (a full disk), closing crashes. The temporary
            # file is discarded anyway, so its descriptor is pointed at an anonymous memory
            # file first (as lib/file/file.c does): the last flush goes nowhere.
            try:
                handle = self.file.id.get_vfd_handle()
                fd = os.memfd_create("nnh5-abandoned", os.MFD_CLOEXEC)
                os.dup2(fd, handle)
                os.close(fd)
            except (AttributeError, OSError, RuntimeError, ValueError):
                pass
            try:
                self.file.close()
            except Exception:  # the file is discarded anyway
                pass
            self.file = None
        self.atomic.abort()

    # attributes ------------------------------------------------------
    def _num_attr(self, oid, name, value, dtype, tid):
        aid = h5a.create(oid, name.encode(), tid, self.scalar)
        aid.write(np.array(value, dtype=dtype), mtype=tid)

    def int_attr(self, oid, name, value):
        self._num_attr(oid, name, value, "<i8", h5t.STD_I64LE)

    def float_attr(self, oid, name, value):
        self._num_attr(oid, name, value, "<f8", h5t.IEEE_F64LE)

    @staticmethod
    def str_attr(oid, name, value):
        """A scalar variable-length UTF-8 string."""
        h5py.AttributeManager(_hl(oid)).create(name, value, dtype=h5py.string_dtype("utf-8"))

    @staticmethod
    def strs_attr(oid, name, values):
        """A 1-d attribute of variable-length UTF-8 strings."""
        h5py.AttributeManager(_hl(oid)).create(
            name, np.array(list(values), dtype=object), shape=(len(values),),
            dtype=h5py.string_dtype("utf-8"))

    def user_attrs(self, oid, attrs):
        for name, v in (attrs or {}).items():
            if isinstance(v, str):
                self.str_attr(oid, name, v)
            elif isinstance(v, (int, np.integer)):
                self.int_attr(oid, name, int(v))
            else:
                self.float_attr(oid, name, float(v))

    # objects ---------------------------------------------------------
    def group(self, parent, name):
        """Open the group name in parent, creating it (creation order tracked) if missing."""
        b = name.encode()
        if parent.links.exists(b):
            return h5g.open(parent, b)
        return h5g.create(parent, b, lcpl=self.lcpl, gcpl=self.gcpl)

    def container(self, name, kind):
        """The group for a container at name ("/" is the root) with its nnh5_kind."""
        g = self.root if name == "/" else self.group(self.root, name)
        self.str_attr(g, "nnh5_kind", kind)
        return g

    def dataset(self, loc, name, value):
        """Write value (a tensor or array) as the dataset name in group loc; a value tied to
        one written before (_tie_key) becomes a hard link to its dataset."""
        key = _tie_key(value)
        if key is not None:
            first = self.ties.get(key)
            if first is not None:
                loc.links.create_hard(name.encode(), first[0], first[1], lcpl=self.lcpl)
                return
        self._new_dataset(loc, name, value)
        if key is not None:
            self.ties[key] = (loc, name.encode())

    def _dcpl(self, buf):
        """The creation list of a compressed tensor, or None to store it contiguous."""
        if self.compression == "none" or buf.ndim == 0 or buf.nbytes < _COMPRESS_MIN_BYTES:
            return None
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_chunk(_chunk_shape(buf.shape, buf.dtype.itemsize))
        dcpl.set_fill_time(h5d.FILL_TIME_NEVER)
        dcpl.set_obj_track_times(False)
        used = compression_filters(self.compression)
        # optional filters: a chunk a filter cannot shrink may be stored as it is
        if used.startswith("blosc"):
            dcpl.set_filter(_BLOSC, h5z.FLAG_OPTIONAL, _BLOSC_CD)
            return dcpl
        if buf.dtype.itemsize > 1:
            dcpl.set_filter(h5z.FILTER_SHUFFLE, h5z.FLAG_OPTIONAL)
        if used.endswith("lz4"):
            dcpl.set_filter(_LZ4, h5z.FLAG_OPTIONAL)
        else:
            dcpl.set_filter(h5z.FILTER_DEFLATE, h5z.FLAG_OPTIONAL,
                            (_DEFLATE_LEVEL[self.compression],))
        return dcpl

    def _new_dataset(self, loc, name, value):
        dtname, buf = _to_buffer(value)
        tid = self.types.get(dtname)
        if tid is None:
            tid = self.types[dtname] = _h5_type(dtname)
        space = self.spaces.get(buf.shape)
        if space is None:
            space = self.spaces[buf.shape] = h5s.create(h5s.SCALAR) if buf.ndim == 0 else \
                h5s.create_simple(buf.shape)
        # contiguous, small ones too (doc/FORMAT.md, "Other readers"), unless compressed
        dcpl = self._dcpl(buf)
        for attempt in (dcpl, None):
            did = h5d.create(loc, name.encode(), tid, space,
                             dcpl=attempt if attempt is not None else self.dcpl_contig,
                             lcpl=self.lcpl)
            if buf.nbytes:
                try:  # the same type in memory and in the file: no conversion
                    did.write(h5s.ALL, h5s.ALL, buf, mtype=tid)
                except (OSError, RuntimeError) as e:
                    raise _io_error(self.path, f"writing dataset '{name}'", e) from e
            # past the default load ratio (zeros): stored as it is, so that it loads
            if attempt is None or buf.nbytes <= did.get_storage_size() * \
                    _LIMIT_DEFAULTS["max_compression_ratio"] + _RATIO_SLACK:
                break
            loc.unlink(name.encode())
        if xxhash is not None:
            self._num_attr(did, "nnh5_xxh3", xxhash.xxh3_64_intdigest(buf), "<u8", h5t.STD_U64LE)
        if dtname == "bfloat16" or dtname in FLOAT8:
            self.str_attr(did, "nnh5_dtype", dtname)

    def state_dict(self, name, sd, kind):
        """sd as a state dict group: key a.b.c is the dataset a/b/c."""
        g = self.container(name, kind)
        keys = list(sd.keys())
        self.strs_attr(g, "nnh5_keys", keys)
        groups = {(): g}
        modules = {"": g}  # the same groups by dotted name, found without splitting a key
        for key in keys:
            cut = key.rfind(".")
            loc = modules.get(key[:max(cut, 0)])
            if loc is None:  # a new module: its groups, outermost first
                comps = key.split(".")
                for i in range(1, len(comps)):
                    path = tuple(comps[:i])
                    if path not in groups:
                        groups[path] = self.group(groups[path[:-1]], comps[i - 1])
                        modules[".".join(path)] = groups[path]
                loc = modules[key[:cut]]
            self.dataset(loc, key[cut + 1:], sd[key])
        return groups


def _io_error(path, what, exc):
    """An OSError for an HDF5 write failure, with the errno HDF5 reports (ENOSPC, ...)."""
    msg = str(exc)
    m = re.search(r"errno = (\d+)", msg)
    code = int(m.group(1)) if m else getattr(exc, "errno", None) or errno.EIO
    return OSError(code, f"save '{path}': {what}: {os.strerror(code)} (HDF5: "
                   f"{msg.split(' (')[0].strip()})")


def _hl(oid):
    """A high-level h5py object around a low-level id (for its attribute manager)."""
    if isinstance(oid, h5d.DatasetID):
        return h5py.Dataset(oid)
    return h5py.Group(oid)


def _check_mapping(obj, what):
    if not isinstance(obj, collections.abc.Mapping):
        hint = " (pass module.state_dict())" if hasattr(obj, "state_dict") else ""
        raise UnsupportedError(f"{what}: expected a mapping of name -> tensor, got a "
                               f"{type(obj).__qualname__}{hint}")


def save_state_dict(state_dict, path, attrs=None, durable=True, compression="none"):
    """Save a state dict (name -> tensor, e.g. module.state_dict()) to path.

    Key "hidden.weight" becomes the dataset hidden/weight, one group per
    module level, key order kept (doc/FORMAT.md, "state_dict"). Values are
    torch tensors (any device, any strides) or numpy arrays of nnh5's dtypes.
    attrs: optional str/int/float attributes for the file's root.
    compression: "none" (default), "fast" or "archive", as the C library's
    profiles write them (doc/FORMATS.md, "Compression"; compression_filters()).
    Tensors sharing memory are saved once, the other names as hard links
    (doc/PYTHON.md, "Tied weights").
    Atomic: on any error the previous file at path is untouched.
    Raises InvalidError (keys, profile), UnsupportedError (values), OSError.
    """
    where = f"save '{os.fspath(path)}': state dict"
    _check_mapping(state_dict, where)
    keys = list(state_dict.keys())
    _check_state_keys(keys, where)
    for k in keys:
        _check_value(state_dict[k], f"{where}: key '{k}'")
    _check_attrs(attrs, where)
    if _c_save("state_dict", state_dict, path, attrs, durable, compression):
        return
    with _Writer(path, durable, compression) as w:
        w.state_dict("/", state_dict, "state_dict")
        w.user_attrs(w.root, attrs)


def save(obj, path, attrs=None, durable=True, compression="none"):
    """Save one tensor, list (or tuple) of tensors, or dict of name -> tensor, like torch.save.

    A tensor is the dataset /tensor; a list or dict is the root group
    (nnh5_kind "list" or "dict"), as the C library's nnh5_save_* write them.
    For a module's state dict use save_state_dict() (nested groups per layer).
    compression: "none" (default), "fast" or "archive" (save_state_dict()).
    """
    where = f"save '{os.fspath(path)}'"
    _check_attrs(attrs, where)
    if isinstance(obj, collections.abc.Mapping):
        keys = list(obj.keys())
        _check_dict_keys(keys, where + ": dict")
        for k in keys:
            _check_value(obj[k], f"{where}: dict key '{k}'")
        if _c_save("dict", obj, path, attrs, durable, compression):
            return
        with _Writer(path, durable, compression) as w:
            g = w.container("/", "dict")
            w.strs_attr(g, "nnh5_keys", keys)
            for k in keys:
                w.dataset(g, k, obj[k])
            w.user_attrs(w.root, attrs)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_value(v, f"{where}: list item {i}")
        if _c_save("list", obj, path, attrs, durable, compression):
            return
        with _Writer(path, durable, compression) as w:
            g = w.container("/", "list")
            w.int_attr(g, "nnh5_length", len(obj))
            for i, v in enumerate(obj):
                w.dataset(g, str(i), v)
            w.user_attrs(w.root, attrs)
    else:
        _check_value(obj, where)
        if _c_save("tensor", obj, path, attrs, durable, compression):
            return
        with _Writer(path, durable, compression) as w:
            w.str_attr(w.root, "nnh5_kind", "tensor")
            w.dataset(w.root, "tensor", obj)
            w.user_attrs(w.root, attrs)


# ------------------------------------------------------------- load policy

# The limits of nnh5_open_options (include/nnh5/file.h) with the C library's defaults
# (lib/store/policy.h); 0 means the default, as in C.
_LIMIT_DEFAULTS = {
    "max_tensor_bytes": 16 << 30,   # one tensor
    "max_load_bytes": 64 << 30,     # every tensor one load materialises, aliases each time
    "max_compression_ratio": 100,   # chunked or unwritten data: declared <= stored x this + 64 KiB
    "max_groups": 10000,            # groups one walk visits
    "max_tensors": 100000,          # datasets one walk visits (and strings in a key list)
    "max_depth": 64,                # group nesting below the start of a walk
    "max_name_length": 1024,        # bytes in one link name
}
_SWITCHES = ("allow_external", "allow_filter_plugins", "copy_aliases")
_MAX_DEPTH_LIMIT = 256            # the largest max_depth accepted, as in C
_RATIO_SLACK = 64 << 10           # compressed data may always expand to this
_MAX_SOFT_LINKS = 16              # soft links followed to resolve one name (HDF5's default)
_MAX_FIXED_STRINGS = 64 << 20     # bytes of one fixed-length string attribute
_U64 = 1 << 64
_ATOMIC_CLASSES = (h5t.INTEGER, h5t.FLOAT, h5t.ENUM)


class LoadOptions:
    """The load policy of the loaders, named and defaulted as the C library's nnh5_open_options.

    Limits (0 means the default): max_tensor_bytes (16 GiB), max_load_bytes
    (64 GiB, every tensor a load materialises: a dataset reached under a
    second name in one load comes back tied to the first, sharing its
    memory, and counts once; with copy_aliases=True it is a copy and counts
    again), max_compression_ratio (100),
    max_groups (10,000), max_tensors (100,000), max_depth (64, at most 256),
    max_name_length (1024). Switches (default False): allow_external
    (follow external links, read external raw storage and virtual
    datasets), allow_filter_plugins (read filters other than those nnh5
    writes: deflate, shuffle, fletcher32, LZ4 and blosc), copy_aliases (load each name of a dataset met
    twice as its own copy, not tied). Every loader takes options=LoadOptions(...)
    and the same names as keyword arguments, which override the object's.
    """
    __slots__ = tuple(_LIMIT_DEFAULTS) + _SWITCHES

    def __init__(self, **values):
        for name in _LIMIT_DEFAULTS:
            setattr(self, name, 0)
        for name in _SWITCHES:
            setattr(self, name, False)
        self._set(values, "LoadOptions")

    def _set(self, values, where):
        for name, v in values.items():
            if name in _SWITCHES:
                if not isinstance(v, (bool, np.bool_)):
                    raise InvalidError(f"{where}: {name} must be True or False, not {v!r}")
                v = bool(v)
            elif name in _LIMIT_DEFAULTS:
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) \
                        or not 0 <= int(v) < _U64:
                    raise InvalidError(f"{where}: {name} must be an integer from 0 (the "
                                       f"default) to 2**64 - 1, not {v!r}")
                v = int(v)
                if name == "max_depth" and v > _MAX_DEPTH_LIMIT:
                    raise InvalidError(f"{where}: max_depth {v} exceeds {_MAX_DEPTH_LIMIT}")
            else:
                raise InvalidError(f"{where}: unknown load option '{name}' (known: "
                                   f"{', '.join(self.__slots__)})")
            setattr(self, name, v)

    def limit(self, name):
        """The limit in force: the value set, or the default when it is 0."""
        return getattr(self, name) or _LIMIT_DEFAULTS[name]

    def __repr__(self):
        return "LoadOptions(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__
                                          if getattr(self, n)) + ")"


def _load_options(options, limits, where):
    """The LoadOptions of one load: options (LoadOptions, a mapping or None) updated by limits."""
    out = LoadOptions()
    if isinstance(options, LoadOptions):
        out._set({n: getattr(options, n) for n in out.__slots__}, where)
    elif isinstance(options, collections.abc.Mapping):
        out._set(dict(options), where)
    elif options is not None:
        raise InvalidError(f"{where}: options must be a LoadOptions or a mapping, not a "
                           f"{type(options).__name__}")
    out._set(limits, where)
    return out


def _escape(b, limit=None):
    """A name from a file for a message, as the C library escapes it: valid UTF-8 as it is,
    control characters and invalid bytes as \\xNN, a backslash doubled."""
    out = []
    for ch in b.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xdc80 <= o <= 0xdcff:
            out.append(f"\\x{o - 0xdc00:02x}")
        elif o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
        if limit is not None and len(out) >= limit:
            break
    return "".join(out)


class _Policy:
    """The load policy of one open file (lib/store/policy.c): names, links and datasets are
    judged before any data is read, and what the load materialises is counted."""

    def __init__(self, opts, path, fid, root):
        self.opts = opts
        self.path = path
        for name in _LIMIT_DEFAULTS:
            setattr(self, name, opts.limit(name))
        self.allow_external = opts.allow_external
        self.allow_filter_plugins = opts.allow_filter_plugins
        self.copy_aliases = opts.copy_aliases
        self.file_size = fid.get_filesize()
        self.fileno = h5o.get_info(root).fileno
        self.loaded = 0
        self.seen = set()        # (fileno, address) of the datasets read so far
        self.starts = []         # contiguous extents read so far, sorted by start
        self.extents = []        # (start, end) beside starts

    def check_name(self, parent, b):
        """A link name met in the file: not too long, valid UTF-8, no control characters."""
        if len(b) > self.max_name_length:
            raise LimitError(f"'{self.path}': group '{parent}' holds a name of {len(b)} bytes "
                             f"('{_escape(b, 64)}...'), more than the limit of "
                             f"{self.max_name_length} (max_name_length)")
        ctrl = _CONTROL.search(b) is not None
        try:
            b.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        if ctrl or not valid:
            raise FormatError(f"'{self.path}': group '{parent}' holds the name '{_escape(b)}', "
                              "which is " + ("made with control characters" if ctrl
                                             else "not valid UTF-8") + ": refused")
        # HDF5 itself would read these as paths: no link can be named so.
        if not b or b"/" in b or b == b".":
            raise FormatError(f"'{self.path}': group '{parent}' holds the name '{_escape(b)}', "
                              "which HDF5 would read as a path: refused")

    def check_link(self, link_type, display, via=None):
        """Refuse links to other files and user-defined links (unless allow_external).

        via: the soft link whose target path led to this link, if any."""
        if link_type in (h5l.TYPE_HARD, h5l.TYPE_SOFT) or self.allow_external:
            return
        what = "an external link (to another file)" if link_type == h5l.TYPE_EXTERNAL \
            else "a user-defined link"
        if via:
            raise UnsafeError(f"'{self.path}': '{via[0]}' is a soft link to '{via[1]}', whose "
                              f"path crosses '{display}', {what}: refused")
        raise UnsafeError(f"'{self.path}': '{display}' is {what}: refused")

    def check_dataset(self, did, display, obj=None, desc=None):
        """Judge the open dataset did before any of its data is read; count it against the
        per-load cap. Returns its logical size in bytes.

        obj: its (file number, object address) when the caller knows them already (a hard
        link's address in a group of a known file); desc: _describe(did), when already
        made. Each is asked of HDF5 when not given."""
        p = self.path
        if obj is None:
            info = h5o.get_info(did)
            obj = (info.fileno, info.addr)
        in_main_file = obj[0] == self.fileno
        dcpl = did.get_create_plist()
        # storage that reads other files, filters outside the allowlist
        layout = dcpl.get_layout()
        if layout == h5d.VIRTUAL and not self.allow_external:
            raise UnsafeError(f"'{p}': dataset '{display}' is a virtual dataset (reads other "
                              "files): refused")
        external = dcpl.get_external_count() > 0
        if external and not self.allow_external:
            raise UnsafeError(f"'{p}': dataset '{display}' stores its data in external files: "
                              "refused")
        for i in range(dcpl.get_nfilters()):
            code = dcpl.get_filter(i)[0]
            why = None if self.allow_filter_plugins else \
                _filter_problem(code, dcpl.get_filter(i)[2])
            if why:
                error = UnsupportedError if "not installed" in why else UnsafeError
                raise error(f"'{p}': dataset '{display}' uses filter {code}: {why}: refused")
        # the declared size, against the per-tensor cap
        ftype, cls, elsize, shape = desc or _describe(did)
        # numbers (and bool enums) cannot hold variable-length data or references
        variable = cls not in _ATOMIC_CLASSES and (
            (cls == h5t.STRING and ftype.is_variable_str())
            or ftype.detect_class(h5t.VLEN) or ftype.detect_class(h5t.REFERENCE))
        if elsize == 0:
            raise FormatError(f"'{p}': dataset '{display}': unreadable shape or type")
        numel = 0 if shape is None else math.prod(shape)
        logical = numel * elsize
        if logical >= _U64:
            raise LimitError(f"'{p}': dataset '{display}' declares a size that overflows 64 "
                             "bits")
        if logical > self.max_tensor_bytes:
            raise LimitError(f"'{p}': dataset '{display}' declares {logical} bytes, more than "
                             f"the per-tensor limit of {self.max_tensor_bytes} "
                             "(max_tensor_bytes)")
        if layout == h5d.CHUNKED:
            chunk = elsize * math.prod(dcpl.get_chunk())
            if chunk >= _U64 or chunk > max(logical, 1 << 20) or chunk > self.max_tensor_bytes:
                raise LimitError(f"'{p}': dataset '{display}' declares chunks of "
                                 f"{'too many' if chunk >= _U64 else 'so many'} bytes for "
                                 f"{logical} bytes of data: refused")
        # the stored size against the declared one; contiguous data inside the file
        offset = None
        stored = did.get_storage_size() if layout != h5d.VIRTUAL else 0
        if layout != h5d.VIRTUAL and logical and not external and not variable:
            if layout == h5d.CHUNKED or (layout == h5d.CONTIGUOUS and stored == 0):
                # compressed, sparse or never written: HDF5 makes up the bytes not stored
                allowed = min(stored * self.max_compression_ratio + _RATIO_SLACK, _U64 - 1)
                if logical > allowed:
                    raise UnsafeError(f"'{p}': dataset '{display}' declares {logical} bytes but "
                                      f"stores {stored}: more than "
                                      f"{self.max_compression_ratio}:1 (a compression bomb or "
                                      "sparse data; max_compression_ratio)")
            elif stored != logical:
                raise FormatError(f"'{p}': dataset '{display}' declares {logical} bytes but "
                                  f"stores {stored} (damaged)")
            elif layout == h5d.CONTIGUOUS and in_main_file:
                offset = did.get_offset()
                if offset is None or offset + stored > self.file_size:
                    raise FormatError(f"'{p}': dataset '{display}': its {stored} bytes of data at "
                                      f"offset {offset} lie outside the file "
                                      f"({self.file_size} bytes; truncated or damaged)")
        self._record(obj, offset, stored, logical, display)
        return logical

    def _record(self, obj, offset, stored, logical, display):
        """Count a materialisation against max_load_bytes; remember a first read's extent."""
        if logical > self.max_load_bytes - self.loaded:
            raise LimitError(f"'{self.path}': dataset '{display}' ({logical} bytes) would bring "
                             "the data read from this file past the per-load limit of "
                             f"{self.max_load_bytes} bytes (max_load_bytes)")
        if obj not in self.seen and offset is not None and stored > 0:
            start, end = offset, offset + stored
            i = bisect.bisect_left(self.starts, start)
            hit = self.extents[i] if i < len(self.extents) and self.extents[i][0] < end else \
                self.extents[i - 1] if i > 0 and self.extents[i - 1][1] > start else None
            if hit:
                raise UnsafeError(f"'{self.path}': dataset '{display}': its data (bytes "
                                  f"{start}..{end}) overlaps the data of another dataset read "
                                  f"from this file (bytes {hit[0]}..{hit[1]}): refused")
            self.starts.insert(i, start)
            self.extents.insert(i, (start, end))
        self.seen.add(obj)
        self.loaded += logical


# ------------------------------------------------------------------ reading

_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _file_kind(mode):
    """What a file of this mode is, for refusals (lib/store/regular.c, nnh5__file_kind)."""
    return next((k for test, k in _FILE_KINDS if test(mode)), "not a regular file")


def _refuse_special(path, what, mode):
    raise InvalidError(f"{what} '{path}': is {_file_kind(mode)}, not a regular file: refused")


def _open_regular(path, what):
    """(fd, (dev, ino)) of path, which must be a regular file (lib/store/regular.c's rule).

    stat first, so a FIFO or device is refused without being opened; then a
    non-blocking open and fstat, which must find the same regular file. The
    caller closes fd.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what} '{path}': No such file or "
                                "directory") from None
    if not stat.S_ISREG(st.st_mode):
        _refuse_special(path, what, st.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            _refuse_special(path, what, fst.st_mode)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.EIO, f"{what} '{path}': the file was replaced while being "
                          "opened")
    except BaseException:
        os.close(fd)
        raise
    return fd, (fst.st_dev, fst.st_ino)


def _hdf5_cause(e):
    """HDF5's error e for a message: "written by a newer HDF5 ..." when it is a version this
    HDF5 cannot decode, as the C library says (lib/store/h5util.c, is_newer_format()), else
    as HDF5 words it. Heaps and symbol-table nodes have one version and no checksum: another
    number there is damage."""
    text = str(e)
    inner = text[text.rfind("(") + 1:text.rfind(")")] if "(" in text else text
    d = inner.strip()
    newer = d.startswith(("unknown message with 'fail if unknown' flag",
                          "unknown datatype class")) or (
        d.startswith(("bad ", "wrong ", "unknown ")) and "version" in d and
        not any(w in d for w in ("global heap", "local heap", "symbol table node")))
    if newer:
        return (f"written by a newer HDF5 than HDF5 {h5py.version.hdf5_version}, which this "
                f"nnh5 uses (HDF5: {d})")
    return text


def _has_hdf5_signature(fd):
    """Does fd hold HDF5's signature where HDF5 looks (offset 0, 512, 1024, ...)?"""
    try:
        size = os.fstat(fd).st_size
        at = 0
        while at + 8 <= size:
            if os.pread(fd, 8, at) == b"\x89HDF\r\n\x1a\n":
                return True
            at = 2 * at if at else 512
    except OSError:
        pass
    return False


class _Reader:
    """An nnh5 (or any HDF5) file open for reading under the load policy (_Policy).

    HDF5 is never asked to follow a path: every link is looked at first
    (link() and follow() resolve soft links here, one component at a time),
    so no other file is opened unless the options allow external links.
    """

    def __init__(self, path, numpy=None, verify_checksums=True, require_checksums=False,
                 options=None):
        self.path = os.fsdecode(os.fspath(path))
        self.file = None
        self.obj = "/"  # the object being judged or read, for messages
        self.mtypes = {}
        opts = options if isinstance(options, LoadOptions) else \
            _load_options(options, {}, f"open '{self.path}'")
        if numpy is None:
            numpy = _torch() is None
        self.numpy = numpy
        self.torch = None if numpy else _torch("loading torch tensors")
        self.verify = verify_checksums
        self.require = require_checksums
        if (self.verify or self.require) and xxhash is None:
            if self.require:
                raise ChecksumError(f"'{self.path}': checksums are required but cannot be "
                                    "verified without python3-xxhash")
            _warn_no_xxhash()
        try:
            fd, judged = _open_regular(self.path, "open")
        except FileNotFoundError as e:
            raise NotFoundError(errno.ENOENT, e.strerror) from None
        except Error:
            raise
        except OSError as e:
            raise FileError(e.errno, f"open '{self.path}': {e.strerror}") from None
        try:
            fapl = h5p.create(h5p.FILE_ACCESS)
            fapl.set_fclose_degree(h5f.CLOSE_STRONG)
            try:
                fid = h5f.open(os.fsencode(self.path), h5f.ACC_RDONLY, fapl=fapl)
            except (OSError, RuntimeError, ValueError) as e:
                cause = _hdf5_cause(e)
                if cause != str(e):
                    raise FormatError(f"open '{self.path}': {cause}") from None
                raise FormatError(f"open '{self.path}': " + ("damaged HDF5 file"
                                  if _has_hdf5_signature(fd) else "not an HDF5 file (or "
                                  "damaged)") + f" (HDF5: {e})") from None
        finally:
            os.close(fd)
        self.file = h5py.File(fid)
        try:
            # HDF5 opened the path again by name: it must be the file judged above.
            try:
                st = os.fstat(fid.get_vfd_handle())
            except (OSError, RuntimeError, ValueError, TypeError):
                st = None
            if st is None or (st.st_dev, st.st_ino) != judged:
                raise FileError(errno.EIO, f"open '{self.path}': the file was replaced while "
                                "being opened")
            self.root = h5g.open(fid, b"/")
            self.policy = _Policy(opts, self.path, fid, self.root)
            if h5a.exists(self.root, b"nnh5_format_version"):
                v = self.attr_int(self.root, "/", "nnh5_format_version")
                if v > FORMAT_VERSION or v < 1:
                    raise FormatError(f"open '{self.path}': nnh5 format version {v} is not "
                                      f"supported (this module reads version {FORMAT_VERSION})")
        except BaseException as e:
            self.close()
            wrapped = self.wrap(e)
            if wrapped is not None:
                raise wrapped from e
            raise

    def close(self):
        if self.file is not None:
            self.root = None
            self.file.close()
            self.file = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        wrapped = self.wrap(exc) if exc is not None else None
        if wrapped is not None:
            raise wrapped from exc
        return False

    def wrap(self, exc):
        """The nnh5.Error for an exception that escaped h5py or numpy, or None to let it go."""
        if isinstance(exc, Error) or not isinstance(exc, Exception):
            return None
        where = f"'{self.path}': object '{self.obj}'"
        if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError)
                                            and "allocate" in str(exc)):
            return NoMemoryError(f"{where}: out of memory ({exc})")
        if isinstance(exc, (RuntimeError, KeyError, OSError, ValueError, TypeError,
                            IndexError, UnicodeError)):
            return HDF5Error(f"{where}: HDF5 failed: {type(exc).__name__}: {exc}")
        return None

    # attributes ------------------------------------------------------
    def attr(self, oid, obj, name):
        """The attribute's value as h5py reads it, or None when absent (sizes checked first)."""
        b = name.encode()
        if not h5a.exists(oid, b):
            return None
        try:
            aid = h5a.open(oid, b)
            space, tid = aid.get_space(), aid.get_type()
            rank, npoints = space.get_simple_extent_ndims(), space.get_simple_extent_npoints()
        except (OSError, RuntimeError, KeyError, ValueError) as e:
            raise FormatError(f"'{self.path}': object '{obj}': cannot open attribute '{name}' "
                              f"({e})") from None
        if rank > 1:
            raise UnsupportedError(f"'{self.path}': object '{obj}': attribute '{name}' is not a "
                                   "scalar or list")
        if npoints > self.policy.max_tensors:
            raise LimitError(f"'{self.path}': object '{obj}': attribute '{name}' holds "
                             f"{npoints} values, more than {self.policy.max_tensors} "
                             "(max_tensors)")
        if not (tid.get_class() == h5t.STRING and tid.is_variable_str()) \
                and tid.get_size() * npoints > _MAX_FIXED_STRINGS:
            raise LimitError(f"'{self.path}': object '{obj}': attribute '{name}' is too large "
                             f"({npoints} values of {tid.get_size()} bytes)")
        try:
            return h5py.AttributeManager(_hl(oid))[name]
        except (OSError, RuntimeError, ValueError, TypeError, KeyError) as e:
            raise FormatError(f"'{self.path}': object '{obj}': attribute '{name}' cannot be "
                              f"read ({e})") from None

    def attr_int(self, oid, obj, name, required=True):
        v = self.attr(oid, obj, name)
        if v is None:
            if required:
                raise FormatError(f"'{self.path}': object '{obj}': no attribute '{name}'")
            return None
        a = np.asarray(v)
        if a.size != 1 or a.dtype.kind not in "iu":
            raise FormatError(f"'{self.path}': object '{obj}': attribute '{name}' is not one "
                              "integer")
        return int(a.reshape(()))

    def attr_float(self, oid, obj, name):
        v = self.attr(oid, obj, name)
        a = np.asarray(v) if v is not None else None
        if a is None or a.size != 1 or a.dtype.kind not in "iuf":
            raise FormatError(f"'{self.path}': object '{obj}': attribute '{name}' is " +
                              ("missing" if a is None else "not one number"))
        return float(a.reshape(()))

    def attr_strs(self, oid, obj, name, scalar=False):
        """A string attribute (fixed- or variable-length, scalar or 1-d) as a list of str."""
        v = self.attr(oid, obj, name)
        if v is None:
            return None
        items = [v] if isinstance(v, (str, bytes)) else list(np.asarray(v).ravel()) \
            if isinstance(v, np.ndarray) and v.dtype.kind in "OSU" else None
        if items is None or not all(isinstance(x, (str, bytes)) for x in items) \
                or (scalar and len(items) != 1):
            raise FormatError(f"'{self.path}': object '{obj}': attribute '{name}' is not "
                              + ("one string" if scalar else "a list of strings"))
        out = []
        for i, x in enumerate(items):  # strings from a file are checked like the ones written
            b = x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape")
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                raise FormatError(f"'{self.path}': object '{obj}': attribute '{name}': string "
                                  f"{i} ('{_escape(b)}') is not valid UTF-8") from None
        return out

    def kind(self, oid, obj):
        """nnh5_kind of a group, or None when it has none."""
        v = self.attr_strs(oid, obj, "nnh5_kind", scalar=True)
        if v is None:
            return None
        if v[0] not in ("list", "dict", "state_dict", "model", "checkpoint", "tensor"):
            raise FormatError(f"'{self.path}': object '{obj}' has unknown nnh5_kind '{v[0]}'")
        return v[0]

    # links and objects -----------------------------------------------
    def link(self, gid, b, display, hops=None, via=None, link_type=None):
        """(link type, open object) of the member named b (one component) of group gid.

        ("", None) when there is no such link. Hard links are opened by
        name (HDF5 follows nothing else); soft link targets are resolved
        here, component by component (follow()), and may not name a group;
        external and user-defined links are refused unless the options
        allow external links. hops
        counts the soft links followed for the name being resolved (and
        names it); via
        is (name, target) of the soft link being resolved, for messages; link_type is the
        link's type (h5l.TYPE_*) when the caller knows it already (from listing the group).
        """
        self.obj = display
        hops = [0, display] if hops is None else hops
        try:
            if link_type is None:
                if not gid.links.exists(b):
                    return "", None
                link_type = gid.links.get_info(b).type
        except (KeyError, OSError, RuntimeError, ValueError) as e:
            raise FormatError(f"'{self.path}': cannot inspect '{display}' ({_hdf5_cause(e)})") from None
        self.policy.check_link(link_type, display, via)
        if link_type == h5l.TYPE_SOFT:
            try:
                target = gid.links.get_val(b)
            except (OSError, RuntimeError, KeyError) as e:
                raise FormatError(f"'{self.path}': cannot inspect '{display}' ({_hdf5_cause(e)})") from None
            obj = self.follow(gid, target, display, hops)
            if isinstance(obj, h5g.GroupID):  # also in the middle of a path, as in C
                raise UnsafeError(f"'{self.path}': '{display}' is a soft link to a group: "
                                  "refused")
            return "soft", obj
        try:
            obj = h5o.open(gid, b)
        except (KeyError, OSError, RuntimeError, ValueError) as e:
            raise FormatError(f"'{self.path}': cannot inspect '{display}' ({_hdf5_cause(e)})") from None
        return {h5l.TYPE_HARD: "hard", h5l.TYPE_EXTERNAL: "external"}.get(link_type, "user"), obj

    def follow(self, gid, target, display, hops):
        """The object the soft link display (in group gid, with the value target) points at."""
        hops[0] += 1
        shown = _escape(target, 256)
        if hops[0] > _MAX_SOFT_LINKS:
            raise FormatError(f"'{self.path}': '{hops[1]}' is a soft link that does not resolve "
                              f"within {_MAX_SOFT_LINKS} soft links (a chain too long, or a "
                              "cycle)")
        comps = [c for c in target.split(b"/") if c and c != b"."]
        if len(comps) > self.policy.max_depth:
            raise LimitError(f"'{self.path}': '{display}' is a soft link to '{shown}', nested "
                             f"deeper than {self.policy.max_depth} groups (max_depth)")
        try:  # "/" opens the root of gid's own file: no link is traversed
            cur = h5g.open(gid, b"/") if target.startswith(b"/") else gid
        except (KeyError, OSError, RuntimeError) as e:
            raise FormatError(f"'{self.path}': cannot inspect '{display}' ({_hdf5_cause(e)})") from None
        at = "" if target.startswith(b"/") else display.rsplit("/", 1)[0]
        for c in comps:
            if not isinstance(cur, h5g.GroupID):
                cur = None
                break
            self.policy.check_name(at or "/", c)
            at += "/" + c.decode("utf-8")
            _, cur = self.link(cur, c, at, hops, (display, shown))
            if cur is None:
                break
        self.obj = display
        if cur is None:
            raise FormatError(f"'{self.path}': cannot inspect '{display}' (a soft link to "
                              f"'{shown}', which does not exist)")
        return cur

    def child(self, gid, name, display):
        """(type, info) of member name of gid: "group", "dataset", "other" or None when absent.

        Refuses what link() refuses, and soft links to groups."""
        ltype, obj = self.link(gid, name.encode("utf-8", "surrogateescape"), display)
        if obj is None:
            return None, None
        info = h5o.get_info(obj)
        if isinstance(obj, h5g.GroupID):
            if ltype == "soft":
                raise UnsafeError(f"'{self.path}': '{display}' is a soft link to a group: "
                                  "refused")
            return "group", info
        if isinstance(obj, h5d.DatasetID):
            return "dataset", info
        return "other", info

    def read_dataset(self, did, display, obj=None):
        """Read the open dataset did as (nnh5 dtype, array), after the load policy judged it.

        obj: its (file number, object address), when known (check_dataset())."""
        self.obj = display
        desc = _describe(did)
        self.policy.check_dataset(did, display, obj, desc)
        ftype, cls, size, shape = desc
        dtname = _dtype_of(ftype, cls, size)
        mtype = None
        if dtname is None and self._keras_bfloat16(did, ftype, display):
            dtname, mtype = "bfloat16", ftype
        if dtname is None:
            raise UnsupportedError(f"'{self.path}': dataset '{display}' has HDF5 type "
                                   f"{_describe_type(ftype)}, which nnh5 does not load as a "
                                   "tensor")
        if shape is None:
            raise FormatError(f"'{self.path}': dataset '{display}' has a null (empty) "
                              "dataspace")
        if len(shape) > MAX_NDIM:
            raise FormatError(f"'{self.path}': dataset '{display}': rank {len(shape)} exceeds "
                              f"{MAX_NDIM}")
        try:
            buf = np.empty(shape, dtype=_BUF[dtname])
        except (MemoryError, ValueError) as e:
            raise NoMemoryError(f"'{self.path}': dataset '{display}': cannot allocate "
                                f"{shape} ({e})") from None
        if buf.size:
            try:  # straight into buf; HDF5 converts only other byte orders
                did.read(h5s.ALL, h5s.ALL, buf, mtype=mtype or self.mem_type(dtname))
            except (OSError, RuntimeError, ValueError) as e:
                raise FormatError(f"'{self.path}': reading dataset '{display}' failed "
                                  f"(HDF5: {e})") from None
        self.check_checksum(did, buf, display)
        if dtname == "bool":
            _check_bool(buf, f"'{self.path}': dataset '{display}'", FormatError)
        return dtname, buf

    def mem_type(self, dtname):
        """The memory type data of dtype dtname is read as (made once per file)."""
        tid = self.mtypes.get(dtname)
        if tid is None:
            tid = self.mtypes[dtname] = _h5_type(dtname)
        return tid

    def _keras_bfloat16(self, did, ftype, display):
        """Keras 3 writes bfloat16 through ml_dtypes, which h5py stores as a 2-byte opaque
        type, and marks it with attribute dtype = "bfloat16" (as lib/file/walk.c)."""
        if ftype.get_class() != h5t.OPAQUE or ftype.get_size() != 2:
            return False
        try:
            v = self.attr_strs(did, display, "dtype", scalar=True)
        except Error:
            return False
        return v == ["bfloat16"]

    def check_checksum(self, did, buf, display):
        if not self.verify and not self.require:
            return
        if not h5a.exists(did, b"nnh5_xxh3"):
            if self.require:
                raise ChecksumError(f"'{self.path}': dataset '{display}' has no checksum "
                                    "(attribute nnh5_xxh3) and checksums are required")
            return
        aid = h5a.open(did, b"nnh5_xxh3")
        atype, aspace = aid.get_type(), aid.get_space()
        if atype.get_class() != h5t.INTEGER or atype.get_size() != 8 \
                or aspace.get_simple_extent_npoints() != 1:
            raise FormatError(f"'{self.path}': dataset '{display}': attribute nnh5_xxh3 is not "
                              "one 64-bit integer")
        stored = np.empty(aspace.shape, dtype="<u8")
        aid.read(stored, mtype=h5t.STD_U64LE)
        stored = int(stored.reshape(()))
        if not self.verify or xxhash is None:
            return
        actual = xxhash.xxh3_64_intdigest(buf)
        if actual != stored:
            raise ChecksumError(f"'{self.path}': dataset '{display}' is damaged: its data hashes "
                                f"to {actual:016x} but the stored checksum is {stored:016x}")

    def convert(self, dtname, buf, display):
        """The loaded value: a torch tensor, or a numpy array (bfloat16 widened to float32)."""
        return _convert(dtname, buf, self.numpy, self.torch, self.path, display)

    def tensor(self, did, display, obj=None):
        dtname, buf = self.read_dataset(did, display, obj)
        return self.convert(dtname, buf, display)

    # containers ------------------------------------------------------
    def open_group(self, name):
        """The group at name ("/" or a path of hard links from the root)."""
        gid = self.root
        shown = ""
        for comp in [c for c in name.split("/") if c]:
            shown += "/" + comp
            ltype, obj = self.link(gid, comp.encode("utf-8", "surrogateescape"), shown)
            typ = None if obj is None else "group" if isinstance(obj, h5g.GroupID) else \
                "dataset" if isinstance(obj, h5d.DatasetID) else "other"
            if typ != "group":
                raise FormatError(f"'{self.path}': object '{shown}' " +
                                  ("not found" if typ is None else f"is a {typ}, not a group"))
            if ltype == "soft":
                raise UnsafeError(f"'{self.path}': '{shown}' is a soft link to a group: refused")
            gid = obj
        return gid

    def read_walk(self, name, sep):
        """key -> tensor of every dataset below the group name, as the C reader orders them.

        One pass under the load policy (names, links, depth, group and
        dataset counts; each dataset judged and counted as it is read).
        Order: the walk (creation order where indexed, else name order,
        depth first), then the group's nnh5_keys, when present, first.
        """
        gid = self.open_group(name)
        pol = self.policy
        top = "/" if name.strip("/") == "" else "/" + name.strip("/")
        found = []
        firsts = {}  # (fileno, address) -> the value of a dataset's first name in this walk
        keys_seen = set()
        groups = [0]

        def visit(g, disp_g, key, ancestors):
            try:
                flags = g.get_create_plist().get_link_creation_order()
            except (OSError, RuntimeError):
                flags = 0
            idx = h5py.h5.INDEX_CRT_ORDER if flags & h5p.CRT_ORDER_INDEXED else h5py.h5.INDEX_NAME
            links = []  # (name, link type, address or value size): what each link is
            try:  # (h5py hands every call the same LinkInfo object: its fields are copied)
                g.links.iterate(lambda nb, li: links.append((nb, li.type, li.u)), info=True,
                                idx_type=idx)
            except (OSError, RuntimeError, KeyError, ValueError) as e:
                raise FormatError(f"'{self.path}': cannot list group '{disp_g}' ({e})") from None
            fileno = ancestors[-1][0]  # g's file, where its hard links lead
            for nb, ltype, addr in links:
                if nb.startswith(b"nnh5_"):
                    continue  # reserved for the format: never part of a dict
                pol.check_name(disp_g, nb)
                comp = nb.decode("utf-8")
                disp = disp_g.rstrip("/") + "/" + comp
                k = key + [comp]
                ltype, obj = self.link(g, nb, disp, link_type=ltype)
                if isinstance(obj, h5d.DatasetID):
                    if len(found) >= pol.max_tensors:
                        raise LimitError(f"'{self.path}': group '{top}' holds more than "
                                         f"{pol.max_tensors} datasets (max_tensors)")
                    joined = sep.join(k)
                    if joined in keys_seen:
                        raise FormatError(f"'{self.path}': group '{top}': two datasets map to "
                                          f"the key '{joined}'")
                    keys_seen.add(joined)
                    if ltype == "hard":  # the link holds the object's address
                        where = (fileno, addr)
                    else:
                        info = h5o.get_info(obj)
                        where = (info.fileno, info.addr)
                    first = firsts.get(where)
                    if first is not None and not pol.copy_aliases:
                        # another name of a dataset loaded already: tied, counted once
                        found.append((joined, _share(first)))
                        continue
                    value = self.tensor(obj, disp, where)
                    firsts.setdefault(where, value)
                    found.append((joined, value))
                elif isinstance(obj, h5g.GroupID):
                    if ltype == "soft":
                        raise UnsafeError(f"'{self.path}': '{disp}' is a soft link to a group: "
                                          "refused")
                    info = h5o.get_info(obj)
                    if (info.fileno, info.addr) in ancestors:
                        raise FormatError(f"'{self.path}': group '{disp}' links back to its own "
                                          "ancestor (a cycle)")
                    if len(ancestors) > pol.max_depth:
                        raise LimitError(f"'{self.path}': '{disp}' is nested deeper than "
                                         f"{pol.max_depth} groups (max_depth)")
                    groups[0] += 1
                    if groups[0] > pol.max_groups:
                        raise LimitError(f"'{self.path}': group '{top}' holds more than "
                                         f"{pol.max_groups} groups (max_groups)")
                    visit(obj, disp, k, ancestors + [(info.fileno, info.addr)])

        info = h5o.get_info(gid)
        try:
            visit(gid, top, [], [(info.fileno, info.addr)])
        finally:
            # visit calls itself through its closure, a reference cycle that holds found
            # and firsts, so every loaded array, until the cyclic collector runs: broken here
            visit = None
        self.obj = top
        keys = self.attr_strs(gid, top, "nnh5_keys")
        if keys and found:
            pos = {}
            for k in keys:
                pos.setdefault(k, len(pos))
            listed = sorted((f for f in found if f[0] in pos), key=lambda f: pos[f[0]])
            found = listed + [f for f in found if f[0] not in pos]
        return collections.OrderedDict(found)

    def read_list(self, name):
        d = self.read_walk(name, "/")
        n = len(d)
        slots = [None] * n
        for key, v in d.items():
            if not (key.isascii() and key.isdigit()) or (key[0] == "0" and key != "0") \
                    or int(key) >= n \
                    or slots[int(key)] is not None:
                raise FormatError(f"'{self.path}': list '{name}': member '{key}' is not an index "
                                  f"0..{max(n - 1, 0)}")
            slots[int(key)] = v
        return slots

    def read_single_tensor(self):
        _, obj = self.link(self.root, b"tensor", "/tensor")
        if isinstance(obj, h5d.DatasetID):
            return self.tensor(obj, "/tensor")
        names = []
        self.root.links.iterate(names.append)
        datasets = []
        for nb in names:
            if nb.startswith(b"nnh5_"):
                continue
            self.policy.check_name("/", nb)
            disp = "/" + nb.decode("utf-8")
            _, obj = self.link(self.root, nb, disp)
            if isinstance(obj, h5d.DatasetID):
                datasets.append((obj, disp))
        if len(datasets) != 1:
            raise FormatError(f"load '{self.path}': no tensor at the root ('/tensor' is missing "
                              "and " + ("there are several datasets)" if datasets else
                                        "there is no dataset)"))
        return self.tensor(*datasets[0])


def _convert(dtname, buf, numpy, torch, path, display):
    """The loaded value of buf (the little-endian data of dtype dtname): a torch tensor on
    buf's memory, or a numpy array (bfloat16 widened to float32, float8 marked)."""
    if numpy:
        if dtname == "bool":
            return buf.view(np.bool_)
        if dtname == "bfloat16":  # exact: the bits of the top half of a float32
            wide = buf.astype("<u4")
            wide <<= np.uint32(16)
            return wide.view("<f4")
        if dtname in FLOAT8:  # no numpy float8: the bits, marked
            return float8_array(buf, dtname)
        return buf.astype(buf.dtype.newbyteorder("="), copy=False)
    if dtname == "bool":
        return torch.from_numpy(buf.view(np.bool_))
    if dtname == "bfloat16":
        return torch.from_numpy(buf.view("=i2")).view(torch.bfloat16)
    if dtname in FLOAT8 and hasattr(torch, dtname):
        return torch.from_numpy(buf).view(getattr(torch, dtname))
    if dtname in ("uint16", "uint32", "uint64") + FLOAT8 and not hasattr(torch, dtname):
        raise UnsupportedError(f"'{path}': dataset '{display}' is {dtname}, which "
                               f"torch {torch.__version__} has no dtype for (load with "
                               "numpy=True)")
    if dtname in ("uint16", "uint32", "uint64"):
        return torch.from_numpy(buf.view(buf.dtype.str.replace("u", "i"))).view(
            getattr(torch, dtname))
    return torch.from_numpy(buf.astype(buf.dtype.newbyteorder("="), copy=False))


# ------------------------------------------------------------- the C library

# Saves and loads of tensors, lists, dicts and state dicts go through libnnh5
# (ctypes) when it can be used: the same files and values as the h5py code
# above, less than half the instructions per tensor (doc/PYTHON.md, "The C
# library"; doc/SPEED.md, "Python module"). Which library: $NNH5_LIBRARY (a path) when set, else the
# installed soname through the dynamic loader; NNH5_PYTHON_PURE=1 uses h5py
# only. A library that cannot be loaded, or whose version or dtype table is not
# the one these bindings were written for, is not used (backend() says why).

_LIB_SONAME = "libnnh5.so.0"
_LIB_ABI = "0.1."   # nnh5_version() must start with this
_C_STATUS = {-1: InvalidError, -2: NoMemoryError, -3: FileError, -4: NotFoundError,
             -5: FormatError, -6: UnsupportedError, -7: ShapeError, -8: LimitError,
             -9: HDF5Error, -10: InvalidError, -11: ChecksumError, -12: UnsafeError,
             -13: FileError}
# How many saves and loads took each path (tests check that the C library was used).
calls = {"libnnh5": 0, "h5py": 0}


class _COpenOptions(ctypes.Structure):
    """struct nnh5_open_options (include/nnh5/file.h), NNH5_OPEN_OPTIONS_VERSION 1."""
    _fields_ = [("version", ctypes.c_uint), ("durable", ctypes.c_bool),
                ("verify_checksums", ctypes.c_bool), ("require_checksums", ctypes.c_bool),
                ("allow_external", ctypes.c_bool), ("allow_filter_plugins", ctypes.c_bool)] + \
        [(n, ctypes.c_uint64) for n in _LIMIT_DEFAULTS] + \
        [("copy_aliases", ctypes.c_bool), ("compression", ctypes.c_int)]


class _CLib:
    """libnnh5's functions these bindings call, with their C types."""

    def __init__(self, path):
        vp, sz, i64p = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64)
        out = ctypes.POINTER(vp)
        cs, ci = ctypes.c_char_p, ctypes.c_int
        lib = ctypes.CDLL(path)
        self.path = path
        lib.nnh5_version.restype, lib.nnh5_version.argtypes = cs, []
        self.version = lib.nnh5_version().decode()
        if not self.version.startswith(_LIB_ABI):  # before any other symbol is looked up
            raise OSError(f"libnnh5 {self.version} is not {_LIB_ABI}x, the version these "
                          "bindings call")
        sigs = {  # name: (result, arguments)
            "nnh5_error_message": (cs, []),
            "nnh5_dtype_name": (cs, [ci]),
            "nnh5_tensor_view_const": (ci, [out, ci, sz, i64p, vp, sz]),
            "nnh5_tensor_share": (ci, [out, vp]), "nnh5_tensor_free": (None, [vp]),
            "nnh5_tensor_dtype": (ci, [vp]), "nnh5_tensor_ndim": (sz, [vp]),
            "nnh5_tensor_shape": (i64p, [vp]), "nnh5_tensor_nbytes": (sz, [vp]),
            "nnh5_tensor_data": (vp, [vp]),
            "nnh5_dict_new": (ci, [out]), "nnh5_dict_free": (None, [vp]),
            "nnh5_dict_set": (ci, [vp, cs, vp]), "nnh5_dict_len": (sz, [vp]),
            "nnh5_dict_key": (cs, [vp, sz]), "nnh5_dict_value": (vp, [vp, sz]),
            "nnh5_list_new": (ci, [out]), "nnh5_list_free": (None, [vp]),
            "nnh5_list_append": (ci, [vp, vp]), "nnh5_list_len": (sz, [vp]),
            "nnh5_list_get": (vp, [vp, sz]),
            "nnh5_save_tensor": (ci, [cs, vp]), "nnh5_save_list": (ci, [cs, vp]),
            "nnh5_save_dict": (ci, [cs, vp]), "nnh5_save_state_dict": (ci, [cs, vp]),
            "nnh5_file_open_ext": (ci, [out, cs, ci, ctypes.POINTER(_COpenOptions)]),
            "nnh5_file_close": (ci, [vp]), "nnh5_file_has": (ctypes.c_bool, [vp, cs]),
            "nnh5_file_discard": (None, [vp]),
            "nnh5_file_write_list": (ci, [vp, cs, vp]),
            "nnh5_file_write_dict": (ci, [vp, cs, vp]),
            "nnh5_file_write_state_dict": (ci, [vp, cs, vp]),
            "nnh5_file_set_attr_string": (ci, [vp, cs, cs, cs]),
            "nnh5_file_set_attr_int": (ci, [vp, cs, cs, ctypes.c_int64]),
            "nnh5_file_set_attr_float": (ci, [vp, cs, cs, ctypes.c_double]),
            "nnh5_file_get_attr_string": (ci, [ctypes.POINTER(vp), vp, cs, cs]),
            "nnh5_free": (None, [vp]),
            "nnh5_file_read_tensor": (ci, [out, vp, cs]),
            "nnh5_file_read_list": (ci, [out, vp, cs]),
            "nnh5_file_read_dict": (ci, [out, vp, cs]),
            "nnh5_file_read_state_dict": (ci, [out, vp, cs]),
            "nnh5_load_list_ext": (ci, [out, cs, ctypes.POINTER(_COpenOptions)]),
            "nnh5_load_dict_ext": (ci, [out, cs, ctypes.POINTER(_COpenOptions)]),
            "nnh5_load_state_dict_ext": (ci, [out, cs, ctypes.POINTER(_COpenOptions)]),
            "nnh5_save_tensor_ext": (ci, [cs, vp, ctypes.POINTER(_COpenOptions)]),
            "nnh5_save_list_ext": (ci, [cs, vp, ctypes.POINTER(_COpenOptions)]),
            "nnh5_save_dict_ext": (ci, [cs, vp, ctypes.POINTER(_COpenOptions)]),
            "nnh5_save_state_dict_ext": (ci, [cs, vp, ctypes.POINTER(_COpenOptions)]),
            "nnh5_dict_export": (ci, [vp, sz, vp, sz]),
            "nnh5_list_export": (ci, [vp, sz, vp, sz]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)  # AttributeError: a library without it
            fn.restype, fn.argtypes = res, args
            setattr(self, name[5:], fn)
        # the dtype enum, as the library numbers it (include/nnh5/dtype.h)
        names = [self.dtype_name(i).decode() for i in range(len(DTYPES))]
        if sorted(names) != sorted(DTYPES):
            raise OSError(f"libnnh5 {self.version} numbers other dtypes: {names}")
        self.dtype_of = names                                    # enum -> name
        self.enum_of = {n: i for i, n in enumerate(names)}       # name -> enum
        self.typestr = [np.dtype(_BUF[n]).str for n in names]    # enum -> numpy buffer
        # A load shows each tensor's memory to numpy as view_typestr (bool as numpy's
        # bool: the library refused bytes other than 0 and 1); where plain_numpy (or
        # plain_torch) is true, that array (torch.from_numpy of it) is the value as is.
        self.view_typestr = ["|b1" if n == "bool" else t for n, t in zip(names, self.typestr)]
        self.plain_numpy = [n not in ("bfloat16",) + FLOAT8 for n in names]
        self.plain_torch = [n not in ("bfloat16", "uint16", "uint32", "uint64") + FLOAT8
                            for n in names]
        # struct nnh5_tensor_export as numpy reads an array of them in a few calls
        fields = [(f, getattr(_CExport, f)) for f, _ in _CExport._fields_]
        self.export_dtype = np.dtype({
            "names": [f for f, _ in fields],
            "formats": [{"shape": ("<i8", (32,)), "dtype": "<i4", "ndim": "<u4"}.get(
                f, f"<u{d.size}") for f, d in fields],
            "offsets": [d.offset for _, d in fields], "itemsize": ctypes.sizeof(_CExport)})


_CLIB = None          # the _CLib in use, False when h5py is used
_CLIB_REASON = ""     # why (not): the library's path, or why it is not used


def _clib():
    """The C library, or None when saves and loads go through h5py (decided once)."""
    global _CLIB, _CLIB_REASON
    if _CLIB is None:
        _CLIB, _CLIB_REASON = False, ""
        explicit = os.environ.get("NNH5_LIBRARY")
        if os.environ.get("NNH5_PYTHON_PURE", "") not in ("", "0"):
            _CLIB_REASON = "NNH5_PYTHON_PURE is set"
        elif xxhash is None:  # the C library would write and verify checksums h5py cannot
            _CLIB_REASON = "python3-xxhash is not installed"
        elif sys.byteorder != "little":
            _CLIB_REASON = "the C path passes memory as it is: little-endian machines only"
        else:
            try:
                _CLIB = _CLib(explicit or _LIB_SONAME)
                _CBuffer.free = _CLIB.tensor_free
                _CLIB_REASON = explicit or _LIB_SONAME
            except (OSError, AttributeError, UnicodeDecodeError) as e:
                _CLIB_REASON = f"{explicit or _LIB_SONAME}: {e}"
                if explicit:
                    warnings.warn(f"nnh5: NNH5_LIBRARY={explicit} is not used ({e}): saving "
                                  "and loading through h5py", RuntimeWarning, stacklevel=3)
    return _CLIB or None


def backend():
    """("libnnh5", path) when saves and loads call the C library, else ("h5py", why not)."""
    lib = _clib()
    return ("libnnh5", lib.path) if lib else ("h5py", _CLIB_REASON)


def _c_error(lib, rc):
    """The nnh5.Error for status rc with the C library's message (file, object, problem)."""
    msg = lib.error_message().decode("utf-8", "backslashreplace")
    cls = _C_STATUS.get(rc, HDF5Error)
    if cls is NotFoundError:
        return NotFoundError(errno.ENOENT, msg)
    if cls is FileError:  # the C message says what failed in strerror's words
        code = next((c for c in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                 errno.EPERM, errno.EFBIG, errno.ENOENT, errno.ENOTDIR,
                                 errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST)
                     if os.strerror(c) in msg), errno.EIO)
        return FileError(code, msg)
    return cls(msg)


class _CFallback(Exception):
    """This call goes to the h5py code: the C library would not write the same file."""


class _CSave:
    """One save through the C library: views of the caller's memory, tied as _tie_key ties.

    Ties are looked for only among values on one memory: per value the save keeps ints
    (its address, its C tensor) and no object Python's cyclic garbage collector tracks;
    the tie keys (tuples) are made for the values at an address met twice."""

    def __init__(self, lib):
        self.lib = lib
        self.keep = []     # what the views point into: alive until the save returns
        self.vals = []     # the values viewed, in order (a tie found later needs the first)
        self.views = []    # their C tensors, in order
        self.first = {}    # the value's own memory address -> index of the first value there
        self.ties = {}     # _tie_key -> C tensor of the first name (addresses met twice)
        self.ptrs = {}     # (address, dtype, shape) -> _tie_key: what C would call tied

    @staticmethod
    def _dense(value):
        """(nnh5 dtype name, the memory C views, shape, bytes, its address or None, the
        value's own address or None: what ties compare)."""
        if _is_torch_tensor(value):  # its memory as it is: bfloat16 and float8 as their bits
            if value.is_cpu and value.is_contiguous() and not value.is_conj() \
                    and not value.is_neg():  # (detach() costs more than the rest)
                name, a = _torch_dtypes(sys.modules["torch"])[value.dtype], value
            else:
                name, _, a = _torch_dense(value)
            shape, nbytes = tuple(a.shape), a.numel() * a.element_size()
            if not nbytes:
                return name, a, shape, 0, None, None
            addr = a.data_ptr()
            return name, a, shape, nbytes, addr, addr if a is value else value.data_ptr()
        name, a = _to_buffer(value)
        shape, nbytes = a.shape, a.nbytes
        if not nbytes:
            return name, a, shape, 0, None, None
        addr = a.__array_interface__["data"][0]
        own = value.__array_interface__["data"][0] if isinstance(value, np.ndarray) else None
        return name, a, shape, nbytes, addr, own

    def _register(self, i):
        """Index value i (the first at its address) for ties as every later one there is."""
        value, t = self.vals[i], self.views[i]
        name, _, shape, _, _, _ = self._dense(value)
        addr = self.lib.tensor_data(t)  # what C views (a copy _dense() makes again is not it)
        key = _tie_key(value)
        self.ptrs[(addr, self.lib.enum_of[name], shape)] = key
        if key is not None:
            self.ties[key] = t

    def view(self, value):
        """A new C tensor (a read-only view) of value; the caller owns it."""
        lib = self.lib
        name, a, shape, nbytes, addr, own = self._dense(value)
        dt = lib.enum_of[name]
        again = own is not None and own in self.first
        if again:  # a second value on this memory: compare tie keys (rare)
            i = self.first[own]
            if i >= 0:
                self._register(i)
                self.first[own] = -1
            key = _tie_key(value)
            if key is not None and key in self.ties:
                t = ctypes.c_void_p()
                rc = lib.tensor_share(ctypes.byref(t), self.ties[key])
                if rc:
                    raise _c_error(lib, rc)
                return t
            # C ties by address, dtype and shape; Python also by strides
            if self.ptrs.setdefault((addr, dt, shape), key) != key:
                raise _CFallback()
        self.keep.append(a)
        t = ctypes.c_void_p()
        rc = lib.tensor_view_const(ctypes.byref(t), dt, len(shape),
                                   (ctypes.c_int64 * len(shape))(*shape) if shape else None,
                                   addr, nbytes)
        if rc:
            raise _c_error(lib, rc)
        if again:
            if key is not None:
                self.ties[key] = t.value
        elif own is not None:
            self.first[own] = len(self.views)
            self.vals.append(value)
            self.views.append(t.value)
        return t

    def run(self, kind, obj, path, attrs=None, durable=True, compression="none"):
        """Save obj (kind: "tensor", "list", "dict" or "state_dict") to path; False when the
        C library does not take it (nothing written: the caller saves through h5py).
        attrs, durable=False or compression: through a file handle (not for a tensor)."""
        lib = self.lib
        _AtomicPath.check(path)  # the same refusals, as the same exceptions
        cpath = os.fsencode(path)
        box = ctypes.c_void_p()
        try:
            if kind == "tensor":
                box = self.view(obj)
                save = lib.save_tensor
            elif kind == "list":
                rc = lib.list_new(ctypes.byref(box))
                if rc:
                    raise _c_error(lib, rc)
                for v in obj:
                    t = self.view(v)
                    rc = lib.list_append(box, t)
                    if rc:
                        lib.tensor_free(t)
                        raise _c_error(lib, rc)
                save = lib.save_list
            else:
                rc = lib.dict_new(ctypes.byref(box))
                if rc:
                    raise _c_error(lib, rc)
                for k, v in obj.items():
                    t = self.view(v)
                    rc = lib.dict_set(box, k.encode("utf-8"), t)
                    if rc:
                        lib.tensor_free(t)
                        raise _c_error(lib, rc)
                save = lib.save_dict if kind == "dict" else lib.save_state_dict
            if attrs:  # written after the container, through a file handle
                save = functools.partial(self.save_ext, kind, attrs, durable, compression)
            elif not durable or compression != "none":  # the direct writer when uncompressed
                o = _c_options(LoadOptions(), True, False)
                o.durable, o.compression = durable, COMPRESSION.index(compression)
                save_opts = {"tensor": lib.save_tensor_ext, "list": lib.save_list_ext,
                             "dict": lib.save_dict_ext}.get(kind, lib.save_state_dict_ext)
                save = lambda p, b: save_opts(p, b, ctypes.byref(o))  # noqa: E731
            with _HDF5_LOCK:
                rc = save(cpath, box)
            if rc in (-1, -6):  # refused what the h5py code takes: it says so, or saves
                return False
            if rc:
                raise _c_error(lib, rc)
            return True
        except _CFallback:
            return False
        finally:
            (lib.tensor_free if kind == "tensor" else lib.list_free if kind == "list"
             else lib.dict_free)(box)
            self.keep = self.vals = None


    def save_ext(self, kind, attrs, durable, compression, cpath, box):
        """nnh5_save_*() through a file handle: open with the options, the container at the
        root, the attributes after it (as the h5py code orders them), commit. A status."""
        lib = self.lib
        o = _c_options(LoadOptions(), True, False)
        o.durable, o.compression = durable, COMPRESSION.index(compression)
        f = ctypes.c_void_p()
        rc = lib.file_open_ext(ctypes.byref(f), cpath, 1, ctypes.byref(o))
        if rc:
            return rc
        write = {"list": lib.file_write_list, "dict": lib.file_write_dict}.get(
            kind, lib.file_write_state_dict)
        rc = write(f, b"/", box)
        for name, v in (attrs or {}).items():
            if rc:
                break
            b = name.encode("utf-8")
            if isinstance(v, str):
                rc = lib.file_set_attr_string(f, b"/", b, v.encode("utf-8"))
            elif isinstance(v, (int, np.integer)):
                rc = lib.file_set_attr_int(f, b"/", b, int(v))
            else:
                rc = lib.file_set_attr_float(f, b"/", b, float(v))
        if rc:
            lib.file_discard(f)
            return rc
        return lib.file_close(f)


def _c_save(kind, obj, path, attrs, durable, compression):
    """Save through the C library when it writes this file as the h5py code would."""
    lib = _clib()
    if lib is None or compression not in COMPRESSION or (
            kind == "tensor" and (attrs or compression != "none")):
        calls["h5py"] += 1  # (the kind of a one-tensor file is set by nnh5_save_tensor only;
        return False        # the h5py code refuses an unknown profile)
    done = _CSave(lib).run(kind, obj, path, attrs, durable, compression)
    calls["libnnh5" if done else "h5py"] += 1
    return done


class _CBuffer:
    """A loaded tensor's memory as numpy sees it: frees the C tensor (a share of the loaded
    one) when the last array (or torch tensor) over it goes. Once numpy has made the array,
    the loader sets __array_interface__ to None: the dict and its tuples would otherwise stay,
    three more objects per tensor for Python's cyclic garbage collector to walk."""
    __slots__ = ("t", "__array_interface__")
    free = None  # nnh5_tensor_free, set with the library

    def __init__(self, t, shape, typestr, addr):
        self.t = t
        self.__array_interface__ = {"version": 3, "shape": shape, "typestr": typestr,
                                    "data": (addr, False)}

    def __del__(self):
        self.free(self.t)


# How many tensors one nnh5_dict_export call describes: the records (296 bytes each)
# and the Python lists made of them stay small beside a load of many small tensors.
_EXPORT_PAGE = 256


class _CExport(ctypes.Structure):
    """struct nnh5_tensor_export (include/nnh5/tensor.h)."""
    _fields_ = [("tensor", ctypes.c_void_p), ("key", ctypes.c_void_p),
                ("data", ctypes.c_void_p), ("nbytes", ctypes.c_uint64),
                ("dtype", ctypes.c_int32), ("ndim", ctypes.c_uint32),
                ("shape", ctypes.c_int64 * 32)]


def _c_options(opts, verify, require):
    o = _COpenOptions(version=1, durable=True, verify_checksums=verify,
                      require_checksums=require, allow_external=opts.allow_external,
                      allow_filter_plugins=opts.allow_filter_plugins,
                      copy_aliases=opts.copy_aliases, compression=0)
    for name in _LIMIT_DEFAULTS:
        setattr(o, name, getattr(opts, name))
    return o


class _CLoad:
    """One load through the C library; values handed to numpy/torch without a copy."""

    def __init__(self, lib, path, numpy, verify, require, opts):
        self.lib = lib
        self.path = os.fsdecode(os.fspath(path))
        self.numpy = _torch() is None if numpy is None else numpy
        self.torch = None if self.numpy else _torch("loading torch tensors")
        self.opts = _c_options(opts, verify, require)

    def values(self, box, is_list, display, out):
        """The values of the C dict (or list) box, in order, into out (a list: appended;
        a dict: out[key] = value): one
        nnh5_dict_export call per _EXPORT_PAGE tensors for their descriptions and a share
        of each one's memory, which numpy (and torch) then hold; display(key) names a
        tensor in a message."""
        lib, free = self.lib, _CBuffer.free
        n = lib.list_len(box) if is_list else lib.dict_len(box)
        export = lib.list_export if is_list else lib.dict_export
        page = max(1, min(n, _EXPORT_PAGE))
        recs = (_CExport * page)()
        view = np.frombuffer(memoryview(recs).cast("B"), dtype=lib.export_dtype)
        # per dtype enum: the numpy typestr the memory is shown as, and whether that array
        # (or torch.from_numpy of it) is the value; else _convert() makes it
        plain = lib.plain_numpy if self.numpy else lib.plain_torch
        typestr = lib.view_typestr
        from_numpy = None if self.numpy else self.torch.from_numpy
        firsts = {}  # address -> value: tied tensors come back tied
        put = out.append if is_list else out.__setitem__
        for first in range(0, n, page):
            rc = export(recs, page, box, first)
            if rc:
                raise _c_error(lib, rc)
            k = min(page, n - first)
            done = 0  # the shares of recs[:done] are held by a _CBuffer or freed
            try:
                a = view[:k]
                keys = (range(first, first + k) if is_list else
                        [ctypes.string_at(p).decode("utf-8") for p in a["key"].tolist()])
                ndims = a["ndim"].tolist()
                rows = zip(a["tensor"].tolist(), keys, a["data"].tolist(),
                           a["nbytes"].tolist(), a["dtype"].tolist(), ndims,
                           a["shape"][:, :max(ndims)].tolist())
                for t, key, addr, nbytes, dt, ndim, shape in rows:
                    shape = tuple(shape[:ndim])
                    if not nbytes:
                        free(t)
                        done += 1
                        name = lib.dtype_of[dt]
                        v = _convert(name, np.empty(shape, dtype=_BUF[name]), self.numpy,
                                     self.torch, self.path, display(key))
                    elif addr in firsts:
                        free(t)
                        done += 1
                        v = _share(firsts[addr])
                    else:
                        owner = _CBuffer(t, shape, typestr[dt], addr)
                        done += 1
                        buf = np.asarray(owner)
                        owner.__array_interface__ = None
                        if plain[dt]:
                            v = buf if from_numpy is None else from_numpy(buf)
                        else:
                            v = _convert(lib.dtype_of[dt], buf, self.numpy, self.torch,
                                         self.path, display(key))
                        firsts[addr] = v
                    if is_list:
                        put(v)
                    else:
                        put(key, v)
            except BaseException:
                for i in range(done, k):
                    free(recs[i].tensor)
                raise

    def kind(self, f):
        """The root's nnh5_kind (None when it has none), as _Reader.kind() reads it."""
        lib = self.lib
        text = ctypes.c_void_p()
        rc = lib.file_get_attr_string(ctypes.byref(text), f, b"/", b"nnh5_kind")
        if rc == -4:
            return None
        if rc:
            raise FormatError(f"'{self.path}': object '/': attribute 'nnh5_kind' is not one "
                              f"string ({lib.error_message().decode('utf-8', 'replace')})")
        try:
            kind = ctypes.string_at(text.value).decode("utf-8", "backslashreplace")
        finally:
            lib.free(text)
        if kind not in ("list", "dict", "state_dict", "model", "checkpoint", "tensor"):
            raise FormatError(f"'{self.path}': object '/' has unknown nnh5_kind '{kind}'")
        return kind

    def read_open(self, kind, group):
        """A one-tensor file, or the state dict at a group: read through a file handle.
        Returns the C tensor or dict (the caller's)."""
        lib = self.lib
        cpath = os.fsencode(self.path)
        f = ctypes.c_void_p()
        rc = lib.file_open_ext(ctypes.byref(f), cpath, 0, ctypes.byref(self.opts))
        if rc:
            raise _c_error(lib, rc)
        box = ctypes.c_void_p()
        try:
            if kind == "tensor":
                if not lib.file_has(f, b"tensor"):
                    raise _CFallback()  # the one-dataset rule of the h5py code
                rc = lib.file_read_tensor(ctypes.byref(box), f, b"tensor")
            else:
                rc = lib.file_read_state_dict(ctypes.byref(box), f,
                                              group.encode("utf-8", "surrogateescape"))
                if rc == -4:  # as the h5py code words a missing group
                    raise FormatError(f"'{self.path}': object '/{group.strip('/')}' not found "
                                      f"({lib.error_message().decode('utf-8', 'replace')})")
            if rc:
                raise _c_error(lib, rc)
        finally:
            lib.file_close(f)
        return box

    def file_kind(self):
        """load()'s kind of the file: its root's nnh5_kind, read through a file handle."""
        lib = self.lib
        f = ctypes.c_void_p()
        rc = lib.file_open_ext(ctypes.byref(f), os.fsencode(self.path), 0,
                               ctypes.byref(self.opts))
        if rc:
            raise _c_error(lib, rc)
        try:
            kind = self.kind(f)
        finally:
            lib.file_close(f)
        if kind == "checkpoint":
            raise UnsupportedError(
                f"load '{self.path}': the file holds a training checkpoint: load "
                "its sections with load_state_dict(path, group='model'), "
                "group='optimizer', ...")
        return kind

    def run(self, what, group="/"):
        """what: "state_dict" (the state dict at group) or "any" (as load() reads).

        Whole files go through the one-call loads with the options (nnh5_load_*_ext:
        the direct reader for files as nnh5 writes them); a one-tensor file and a
        group inside a file through a file handle. load() reads the root's kind
        first, through a file handle of its own."""
        lib = self.lib
        cpath = os.fsencode(self.path)
        top = "/" + group.strip("/") if group.strip("/") else ""
        with _HDF5_LOCK:
            kind = self.file_kind() if what == "any" else "state_dict"
            if kind == "tensor" or top:
                box = self.read_open(kind, group)
            else:
                box = ctypes.c_void_p()
                load = {"list": lib.load_list_ext, "state_dict": lib.load_state_dict_ext,
                        "model": lib.load_state_dict_ext}.get(kind, lib.load_dict_ext)
                rc = load(ctypes.byref(box), cpath, ctypes.byref(self.opts))
                if rc:
                    raise _c_error(lib, rc)
        if kind == "tensor":  # handed on as a list of one
            one = ctypes.c_void_p()
            rc = lib.list_new(ctypes.byref(one)) or lib.list_append(one, box)
            if rc:
                lib.tensor_free(box)
                lib.list_free(one)
                raise _c_error(lib, rc)
            box = one
        is_list = kind in ("list", "tensor")
        sep = "." if kind in ("state_dict", "model") else "/"
        out = [] if is_list else collections.OrderedDict() if sep == "." else {}
        try:
            self.values(box, is_list,
                        lambda k: "/tensor" if kind == "tensor" else f"/{k}" if is_list
                        else top + "/" + k.replace(sep, "/"), out)
        finally:
            (lib.list_free if is_list else lib.dict_free)(box)
        return out[0] if kind == "tensor" else out


def _c_load(what, path, numpy, verify, require, opts, group="/"):
    """Load through the C library; None when the h5py code is to load this file."""
    lib = _clib()
    if lib is None:
        calls["h5py"] += 1
        return None
    try:
        value = _CLoad(lib, path, numpy, verify, require, opts).run(what, group)
    except _CFallback:
        calls["h5py"] += 1
        return None
    calls["libnnh5"] += 1
    return value


_LOAD_OPTIONS_DOC = """
    Load policy (doc/PYTHON.md, as the C library's nnh5_open_options):
    options=LoadOptions(...) or a mapping, and/or the same names as keyword
    arguments: max_tensor_bytes, max_load_bytes, max_compression_ratio,
    max_groups, max_tensors, max_depth, max_name_length, allow_external,
    allow_filter_plugins, copy_aliases. Refusals raise UnsafeError (other files, filters,
    bombs, overlapping data), LimitError (sizes and counts past the caps),
    FormatError (damaged data, bad names, cycles); see Error.
"""


def _loader(fn):
    """Append the load policy's arguments to a loader's documentation."""
    fn.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + _LOAD_OPTIONS_DOC
    return fn


@_loader
def load_state_dict(path, numpy=None, verify_checksums=True, require_checksums=False,
                    group="/", options=None, **limits):
    """Load the state dict at the root of path (or at group) as an OrderedDict of key -> tensor.

    Keys in the saved order (nnh5_keys; for files from other writers creation
    order where tracked, else name order, depth first); reserved nnh5_* links
    (a model's probe) are skipped. Values are torch tensors, or numpy arrays
    when numpy=True or torch is not installed (bfloat16 then widens exactly
    to float32, as h5py shows it). Files from the C library, from this module
    and plain h5py files all load. group names a group inside the file, for
    example a section of a training checkpoint ("model", "optimizer").
    Raises NotFoundError (a FileNotFoundError), FormatError, ChecksumError,
    UnsafeError, LimitError, UnsupportedError.
    """
    opts = _load_options(options, limits, f"load_state_dict '{os.fspath(path)}'")
    value = _c_load("state_dict", path, numpy, verify_checksums, require_checksums, opts, group)
    if value is not None:
        return value
    with _Reader(path, numpy, verify_checksums, require_checksums, opts) as r:
        return r.read_walk(group, ".")


@_loader
def load(path, numpy=None, verify_checksums=True, require_checksums=False, options=None,
         **limits):
    """Load what save() (or the C library's nnh5_save_*) wrote, like torch.load.

    By the root's nnh5_kind: "tensor" -> a tensor, "list" -> a list, "dict"
    -> a dict, "state_dict" or "model" -> an OrderedDict (the parameters).
    A file without nnh5_kind (plain h5py) loads as a dict whose keys are
    member paths joined with '/'.
    """
    opts = _load_options(options, limits, f"load '{os.fspath(path)}'")
    value = _c_load("any", path, numpy, verify_checksums, require_checksums, opts)
    if value is not None:
        return value
    with _Reader(path, numpy, verify_checksums, require_checksums, opts) as r:
        kind = r.kind(r.root, "/")
        if kind == "tensor":
            return r.read_single_tensor()
        if kind == "list":
            return r.read_list("/")
        if kind in ("state_dict", "model"):
            return r.read_walk("/", ".")
        if kind == "checkpoint":
            raise UnsupportedError(f"load '{r.path}': the file holds a training checkpoint: "
                                   "load its sections with load_state_dict(path, "
                                   "group='model'), group='optimizer', ...")
        return dict(r.read_walk("/", "/"))

# ------------------------------------------------------------------ models

def _layer_spec(torch, name, child):
    """(type name, {hyperparameter: value}) of a child nnh5 can rebuild, else UnsupportedError."""
    nn = torch.nn
    t = type(child)
    if t is nn.Linear:
        return "Linear", {"in_features": child.in_features, "out_features": child.out_features,
                          "bias": int(child.bias is not None)}
    if t is nn.LazyLinear:  # not inferred yet (an inferred one has become a Linear)
        return "LazyLinear", {"in_features": -1, "out_features": child.out_features,
                              "bias": int(child.bias is not None)}
    if t in (nn.ReLU, nn.Sigmoid, nn.Tanh):
        return t.__name__, {}
    if t is nn.GELU:
        if getattr(child, "approximate", "none") != "none":
            raise UnsupportedError(f"save_model: child '{name}' is GELU(approximate="
                                   f"'{child.approximate}'): nnh5 computes only the exact erf "
                                   "form (approximate='none')")
        return "GELU", {}
    if t is nn.Flatten:
        return "Flatten", {"start_dim": child.start_dim, "end_dim": child.end_dim}
    if t is nn.Dropout:
        return "Dropout", {"p": float(child.p)}
    raise UnsupportedError(f"save_model: child '{name}' is {t.__module__}.{t.__qualname__} "
                           f"({child!r}): nnh5 rebuilds only {', '.join(LAYER_TYPES)} in a "
                           "torch.nn.Sequential (save its state_dict() instead)")


def _model_children(torch, module):
    if type(module) is not torch.nn.Sequential:
        raise UnsupportedError(f"save_model: the model is a {type(module).__module__}."
                               f"{type(module).__qualname__}, not a torch.nn.Sequential: nnh5 "
                               "rebuilds only sequences of built-in layers (save its "
                               "state_dict() instead)")
    out = []
    for name, child in module._modules.items():
        if child is None:
            raise UnsupportedError(f"save_model: child '{name}' is None")
        if name.startswith("nnh5_") or "." in name or "/" in name:
            raise InvalidError(f"save_model: child name '{name}' cannot be stored (no '.', '/' "
                               "or nnh5_ prefix)")
        out.append((name, child, _layer_spec(torch, name, child)))
    return out


def save_model(module, path, probe_input=None, attrs=None, durable=True, compression="none"):
    """Save a torch.nn.Sequential with its architecture (doc/FORMAT.md, "Models").

    Children may be Linear, LazyLinear, ReLU, Sigmoid, Tanh, GELU (exact
    form), Flatten and Dropout; anything else is refused with an
    UnsupportedError naming the child. Parameters must share one dtype,
    float32 or float64. probe_input (a tensor) is run through the module in
    eval mode without gradients (a LazyLinear infers its input width from
    it), and the input and output are stored under nnh5_probe/ so that
    nnh5_verify_model() can check a reloaded model. The module's training
    flag is restored afterwards. The C library rebuilds the file with
    nnh5_load_model(); load_model() rebuilds it in PyTorch.
    """
    torch = _torch("save_model")
    where = f"save_model '{os.fspath(path)}'"
    _check_attrs(attrs, where)
    _model_children(torch, module)  # refuse unknown layers before running anything
    probe_out = None
    if probe_input is not None:
        x = probe_input if isinstance(probe_input, torch.Tensor) else \
            torch.from_numpy(np.asarray(probe_input))
        _check_value(x, where + ": probe input")
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                probe_out = module(x)
        except Exception as e:
            raise InvalidError(f"{where}: probe: the model cannot run the probe input of shape "
                               f"{tuple(x.shape)}: {e}") from e
        finally:
            module.train(was_training)
        probe_input = x
    children = _model_children(torch, module)  # again: the probe may have inferred lazy widths
    sd = collections.OrderedDict((k, v) for k, v in module.state_dict().items()
                                 if not torch.nn.parameter.is_lazy(v))
    dtypes = {v.dtype for v in sd.values()}
    if len(dtypes) > 1 or (dtypes and not dtypes <= {torch.float32, torch.float64}):
        raise UnsupportedError(f"{where}: parameters of dtype {sorted(map(str, dtypes))}: an "
                               "nnh5 model computes in one dtype, float32 or float64 (convert "
                               "with module.float() or module.double())")
    model_dtype = "float64" if dtypes == {torch.float64} else "float32"
    _check_state_keys(list(sd), where)
    with _Writer(path, durable, compression) as w:
        groups = w.state_dict("/", sd, "model")
        for name, _, (type_name, hyper) in children:
            g = groups.get((name,)) or w.group(w.root, name)
            w.str_attr(g, "nnh5_layer_type", type_name)
            for k, v in hyper.items():
                if isinstance(v, float):
                    w.float_attr(g, k, v)
                else:
                    w.int_attr(g, k, v)
        w.strs_attr(w.root, "nnh5_layers", [c[0] for c in children])
        w.str_attr(w.root, "nnh5_model_dtype", model_dtype)
        if probe_input is not None:
            pg = w.group(w.root, "nnh5_probe")
            w.dataset(pg, "input", probe_input)
            w.dataset(pg, "output", probe_out)
        w.user_attrs(w.root, attrs)


@_loader
def load_model(path, verify_checksums=True, require_checksums=False, options=None, **limits):
    """Rebuild the torch.nn.Sequential a model file describes (saved by save_model() or C).

    Children are rebuilt from nnh5_layers and each child's nnh5_layer_type
    and hyperparameters, in the model's dtype (nnh5_model_dtype), then the
    parameters are loaded strictly. Returns the model in eval mode.
    Raises FormatError: not a model, a child without its group or type, a
    layer type nnh5 does not know (named with the child), missing or
    out-of-range hyperparameters; ShapeError: missing, unexpected or
    mis-shaped parameters (one message lists them all), and a Linear whose
    declared sizes are not its stored weight's shape, refused before any
    layer allocates its parameters (a forged architecture costs nothing).
    """
    torch = _torch("load_model")
    nn = torch.nn
    opts = _load_options(options, limits, f"load_model '{os.fspath(path)}'")
    with _Reader(path, False, verify_checksums, require_checksums, opts) as r:
        where = f"'{r.path}': model '/'"
        kind = r.kind(r.root, "/")
        if kind != "model":
            raise FormatError(f"{where} is a {kind or 'group'}, not a model (no architecture)")
        layers = r.attr_strs(r.root, "/", "nnh5_layers")
        if layers is None:
            raise FormatError(f"{where}: no attribute 'nnh5_layers'")
        dtname = r.attr_strs(r.root, "/", "nnh5_model_dtype", scalar=True)
        dtname = dtname[0] if dtname else "float32"
        if dtname not in ("float16", "bfloat16", "float32", "float64"):
            raise FormatError(f"{where}: attribute 'nnh5_model_dtype': '{dtname}' is not a float "
                              "dtype")
        dtype = torch.float64 if dtname == "float64" else torch.float32
        sd = r.read_walk("/", ".")
        children = collections.OrderedDict()
        for name in layers:
            if not name or "/" in name or "." in name or name.startswith("nnh5_"):
                raise FormatError(f"{where}: child name '{name}' is not valid")
            typ, _ = r.child(r.root, name, "/" + name)
            if typ != "group":
                raise FormatError(f"{where}: child '{name}': no group '/{name}'")
            g = h5g.open(r.root, name.encode())
            tn = r.attr_strs(g, "/" + name, "nnh5_layer_type", scalar=True)
            if tn is None:
                raise FormatError(f"{where}: child '{name}': no layer type (attribute "
                                  "'nnh5_layer_type')")
            children[name] = _read_layer(r, g, name, tn[0], where)
        for name, spec in children.items():  # before any layer allocates its parameters
            _check_declared(name, spec, sd, where)
    model = nn.Sequential(collections.OrderedDict(
        (name, _make_layer(torch, name, spec, dtype, sd)) for name, spec in children.items()))
    _load_strict(torch, model, sd, dtype, where)
    return model.eval()


def _read_layer(r, g, name, type_name, where):
    """(type name, {hyperparameter: value}) of a child, from its attributes; builds nothing."""
    obj = "/" + name

    def num(attr, lo):
        v = r.attr_int(g, obj, attr, required=False)
        if v is None:
            raise FormatError(f"{where}: child '{name}' ({type_name}): attribute '{attr}' is "
                              "missing")
        if v < lo:
            raise FormatError(f"{where}: child '{name}' ({type_name}): attribute '{attr}' = {v} "
                              "is out of range")
        return v

    if type_name in ("Linear", "LazyLinear"):
        out_f, bias = num("out_features", 1), num("bias", 0)
        if bias > 1:
            raise FormatError(f"{where}: child '{name}': attribute 'bias' = {bias} is not 0 or 1")
        in_f = num("in_features", 1) if type_name == "Linear" else None
        return type_name, {"in_features": in_f, "out_features": out_f, "bias": bool(bias)}
    if type_name in ("ReLU", "Sigmoid", "Tanh", "GELU"):
        return type_name, {}
    if type_name == "Flatten":
        return type_name, {"start_dim": num("start_dim", -MAX_NDIM),
                           "end_dim": num("end_dim", -MAX_NDIM)}
    if type_name == "Dropout":
        v = r.attr(g, obj, "p")
        if v is None:
            raise FormatError(f"{where}: child '{name}' (Dropout): attribute 'p' is missing")
        p = r.attr_float(g, obj, "p")
        if not 0.0 <= p <= 1.0:
            raise FormatError(f"{where}: child '{name}' (Dropout): p = {p} is out of range")
        return type_name, {"p": p}
    raise FormatError(f"{where}: child '{name}': unknown layer type '{type_name}' (nnh5 rebuilds "
                      f"only {', '.join(LAYER_TYPES)})")


def _check_declared(name, spec, sd, where):
    """The declared sizes against the stored weight, before anything is allocated.

    The attributes cost nothing to forge (a 24 KB file can declare
    Linear(20000, 20000)): a Linear is built only when its stored weight has
    exactly (out_features, in_features), a LazyLinear with a stored weight
    only when that has out_features rows (lib/nn/model_file.c, check_spec).
    """
    type_name, h = spec
    if type_name not in ("Linear", "LazyLinear"):
        return
    key = name + ".weight"
    w = sd.get(key)
    if type_name == "LazyLinear":
        if w is None or (w.dim() == 2 and w.shape[0] == h["out_features"]):
            return
        raise ShapeError(f"{where}: child '{name}' declares LazyLinear(out_features="
                         f"{h['out_features']}) but the file stores '{key}' as "
                         f"{tuple(w.shape)}: refused before allocating its parameters")
    if w is not None and tuple(w.shape) == (h["out_features"], h["in_features"]):
        return
    stored = f"stores '{key}' as {tuple(w.shape)}" if w is not None else \
        f"has no parameter '{key}'"
    raise ShapeError(f"{where}: child '{name}' declares Linear(in_features={h['in_features']}, "
                     f"out_features={h['out_features']}) but the file {stored}: refused before "
                     "allocating its parameters")


def _make_layer(torch, name, spec, dtype, sd):
    nn = torch.nn
    type_name, h = spec
    if type_name == "Linear":
        return nn.Linear(h["in_features"], h["out_features"], bias=h["bias"], dtype=dtype)
    if type_name == "LazyLinear":
        w = sd.get(name + ".weight")
        if w is not None and w.dim() == 2:  # the file holds what the lazy layer inferred
            return nn.Linear(w.shape[1], h["out_features"], bias=h["bias"], dtype=dtype)
        return nn.LazyLinear(h["out_features"], bias=h["bias"], dtype=dtype)
    if type_name == "Flatten":
        return nn.Flatten(h["start_dim"], h["end_dim"])
    if type_name == "Dropout":
        return nn.Dropout(h["p"])
    return getattr(nn, type_name)()


def _load_strict(torch, model, sd, dtype, where):
    """Load sd into model strictly, one message for every problem; floats convert to dtype."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not torch.nn.parameter.is_lazy(own[k])]
    unexpected = [k for k in sd if k not in own]
    bad = []
    for k, v in sd.items():
        if k in own and not torch.nn.parameter.is_lazy(own[k]):
            if tuple(v.shape) != tuple(own[k].shape):
                bad.append(f"'{k}': model {tuple(own[k].shape)}, file {tuple(v.shape)}")
            elif not v.is_floating_point():
                bad.append(f"'{k}': dtype {v.dtype} is not a float dtype")
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append("missing keys: " + ", ".join(f"'{k}'" for k in missing))
        if unexpected:
            parts.append("unexpected keys: " + ", ".join(f"'{k}'" for k in unexpected))
        if bad:
            parts.append("size mismatch: " + "; ".join(bad))
        raise ShapeError(f"{where}: parameters do not fit the architecture: " + "; ".join(parts))
    # checked above; not strict for the parameters of a LazyLinear that is still lazy
    model.load_state_dict(collections.OrderedDict((k, v.to(dtype)) for k, v in sd.items()),
                          strict=False)
