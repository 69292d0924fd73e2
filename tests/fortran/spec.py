"""The arrays the Fortran round-trip tests exchange, defined once for the
three writers and readers (tests/fortran/roundtrip.py, the Fortran program
gen_check.py writes, fortran_c_files.c): one per dtype Fortran has and per
shape tag. Element k (0-based, in memory order: Fortran column-major ==
C row-major of the reversed shape) has the value val(type, k) in all three.
"""

# Fortran shapes; the C / h5py shape is the reverse
SHAPES = {
    "r0": (),
    "r1": (3,),
    "r2": (3, 2),
    "r3": (3, 2, 4),
    "r4": (2, 3, 1, 2),
    "e1": (0,),
    "e2": (3, 0),
}

# type suffix -> (Fortran type, numpy dtype name, C dtype constant)
TYPES = {
    "i8": ("integer(int8)", "int8", "NNH5_INT8"),
    "i16": ("integer(int16)", "int16", "NNH5_INT16"),
    "i32": ("integer(int32)", "int32", "NNH5_INT32"),
    "i64": ("integer(int64)", "int64", "NNH5_INT64"),
    "r32": ("real(real32)", "float32", "NNH5_FLOAT32"),
    "r64": ("real(real64)", "float64", "NNH5_FLOAT64"),
    "l": ("logical", "bool", "NNH5_BOOL"),
    "c32": ("complex(real32)", "complex64", "NNH5_COMPLEX64"),
    "c64": ("complex(real64)", "complex128", "NNH5_COMPLEX128"),
}


def val(t, k):
    """Element k of an array of type t (numpy is imported by the caller)."""
    import numpy as np
    if t == "i8":
        return ((k * 37 + 11) % 256) - 128
    if t == "i16":
        return ((k * 4099 + 7) % 65536) - 32768
    if t == "i32":
        return ((k * 1000003 + 5) % 2**32) - 2**31
    if t == "i64":
        if k == 0:
            return -2**63
        if k == 1:
            return 2**63 - 1
        return k * 123456789012345 - 2000000000000000
    if t in ("r32", "r64"):
        f = np.finfo(np.float32 if t == "r32" else np.float64)
        if k == 0:
            return f.max
        if k == 1:
            return -f.tiny / 2  # a subnormal
        if k == 2:
            return -0.0
        return (k - 7) * 0.375
    if t == "l":
        return k % 3 == 0
    if t in ("c32", "c64"):  # real part element k's, imaginary part element k + 3's
        r = "r32" if t == "c32" else "r64"
        return complex(val(r, k), val(r, k + 3))
    raise ValueError(t)


def array(t, tag):
    """The array of type t and shape tag, in C order (shape reversed)."""
    import numpy as np
    shape = tuple(reversed(SHAPES[tag]))
    n = int(np.prod(shape)) if shape else 1
    a = np.array([val(t, k) for k in range(n)], dtype=TYPES[t][1])
    return a.reshape(shape)
