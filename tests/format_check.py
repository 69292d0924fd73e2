#!/usr/bin/python3
"""Compare nnh5_tensor_format() with PyTorch's repr(), byte for byte.

usage: format_check.py PATH/TO/test_format

Builds a deterministic set of tensors in torch (every nnh5 dtype, 0-d,
empty, 1-d short and wrapping, 2-d, 3-d, 4-d, summarised, integer-valued
floats, scientific notation, negatives, nan/inf, bool), sends each one's
dtype, shape and raw element bytes to `test_format --cases`, and checks that
the C text equals repr() exactly. Sending bytes instead of a formula means
both sides format the very same values, including float16/bfloat16 rounding.

torch 1.13 has no uint16/uint32/uint64: those are checked against torch's
own printing code run on an int64 tensor with the same values, with the
suffix "dtype=uint16" etc. that nnh5 documents for them.

Exits 77 (meson's "skipped") when torch or numpy cannot be imported.
"""
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch._tensor_str as tstr
except ImportError as e:  # pragma: no cover
    print(f"skipping: {e}")
    sys.exit(77)

TORCH_DTYPES = {
    "bool": torch.bool,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
NUMPY_ONLY = {"uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}
FLOATS = ("float16", "bfloat16", "float32", "float64")
COMPLEX = ("complex64", "complex128")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")

SHAPES = [
    (), (0,), (0, 3), (2, 0, 4), (1,), (5,), (8,), (30,), (3, 4), (7, 3),
    (2, 3, 4), (1, 1, 1), (2, 2, 2, 2), (1001,), (40, 30), (3, 20, 20),
    (2, 1000), (7, 7, 7, 7), (1, 2000),
]


class Case:
    def __init__(self, desc, name, tensor=None, array=None):
        self.desc = desc
        self.name = name
        self.tensor = tensor  # torch tensor for torch dtypes
        self.array = array    # numpy array for the uint dtypes torch lacks

    def shape(self):
        return tuple(self.tensor.shape if self.tensor is not None else self.array.shape)

    def raw(self):
        if self.tensor is not None:
            t = self.tensor.contiguous().reshape(-1)
            if t.dtype == torch.bfloat16:
                t = t.view(torch.int16)
            return t.numpy().tobytes()
        return np.ascontiguousarray(self.array).tobytes()

    def line(self):
        shape = self.shape()
        data = self.raw().hex() or "-"
        return " ".join([self.name, str(len(shape))] + [str(d) for d in shape] + [data])

    def expected(self):
        if self.tensor is not None:
            return repr(self.tensor)
        # torch's _str_intern for a plain CPU tensor, with our dtype name.
        t = torch.from_numpy(self.array.astype(np.int64))
        prefix = "tensor("
        indent = len(prefix)
        suffixes = []
        if t.numel() == 0:
            if t.dim() != 1:
                suffixes.append("size=" + str(tuple(t.shape)))
            body = "[]"
        else:
            body = tstr._tensor_str(t, indent)
        suffixes.append("dtype=" + self.name)
        return tstr._add_suffixes(prefix + body, suffixes, indent, force_newline=False)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def float_values(kind, n, gen):
    """float64 values of one kind; converted to the target dtype by torch."""
    i = np.arange(n, dtype=np.float64)
    if kind == "arange":
        return i
    if kind == "int_neg":
        return i - n // 2
    if kind == "frac":
        return (i * 0.37) % 7 - 3.1
    if kind.startswith("randn"):
        scale = float(kind[5:] or "1")
        return torch.randn(n, generator=gen, dtype=torch.float64).numpy() * scale
    if kind == "nan_inf":
        v = (i * 1.25) - 3
        v[::4] = np.nan
        v[1::5] = np.inf
        v[2::7] = -np.inf
        return v
    if kind == "int_nan":
        v = i.copy()
        v[::3] = np.nan
        v[1::4] = -np.inf
        return v
    if kind == "all_nan":
        return np.full(n, np.nan)
    if kind == "zeros":
        v = np.zeros(n)
        v[1::2] = -0.0
        return v
    if kind == "neg_zero_frac":
        v = -(i % 3) * 0.5
        return v
    if kind == "mixed":  # ratio > 1000 -> scientific
        return np.where(i % 2 == 0, 1.5e-2, 3.25e3) * (1 + i)
    if kind == "tiny":   # min < 1e-4 -> scientific
        return 1e-5 * (i + 1)
    if kind == "huge_int":  # integer-valued but > 1e8 -> scientific
        return 1.5e9 + i
    if kind == "ratio_1000":  # exactly at the boundary: not scientific
        return np.where(i % 2 == 0, 1.0, 1000.0)
    if kind == "ratio_1001":
        return np.where(i % 2 == 0, 1.0, 1001.0)
    if kind == "rounding":  # widths that change when digits carry
        return np.array([9.99996, 0.99995, -99.99999, 0.00015, 12.34565])[i.astype(int) % 5]
    if kind == "min_1e-4":  # exactly at the boundary in float64: not scientific
        return np.where(i % 2 == 0, 1.0e-4, 0.5)
    if kind == "max_1e8":
        return np.where(i % 2 == 0, 1.0e8, 2.0e5)
    raise ValueError(kind)


FLOAT_KINDS = [
    "arange", "int_neg", "frac", "randn", "randn1e-6", "randn1e-3", "randn1e3",
    "randn1e5", "randn1e9", "randn1e30", "nan_inf", "int_nan", "all_nan", "zeros",
    "neg_zero_frac", "mixed", "tiny", "huge_int", "ratio_1000", "ratio_1001",
    "rounding", "max_1e8", "min_1e-4",
]


def int_values(name, kind, n):
    i = np.arange(n, dtype=np.int64)
    if name in TORCH_DTYPES:
        info = torch.iinfo(TORCH_DTYPES[name])
        lo, hi = info.min, info.max
    else:
        info = np.iinfo(NUMPY_ONLY[name])
        # torch checks run through int64, so stay inside it.
        lo, hi = int(info.min), min(int(info.max), 2**63 - 1)
    if kind == "small":
        v = (i * 37) % 201 - 100
        v = np.clip(v, lo, hi)
    elif kind == "extremes":
        v = np.where(i % 3 == 0, lo, np.where(i % 3 == 1, hi, 0))
    else:  # "spread": digits of varying length
        v = np.array([0, 7, -12, 345, -6789, 10, 1, -1])[i % 8]
        v = np.clip(v, lo, hi)
    return v


def make_case(name, shape, kind, gen):
    n = numel(shape)
    desc = f"{name} {shape} {kind}"
    if name == "bool":
        i = np.arange(n)
        v = {"mixed": i % 3 == 0, "all_true": np.ones(n, bool), "all_false": np.zeros(n, bool)}[kind]
        return Case(desc, name, tensor=torch.from_numpy(v.reshape(shape)))
    if name in COMPLEX:  # the imaginary parts of another kind, so the two widths differ
        other = FLOAT_KINDS[(FLOAT_KINDS.index(kind) + 7) % len(FLOAT_KINDS)]
        re = torch.from_numpy(np.ascontiguousarray(float_values(kind, n, gen).reshape(shape)))
        im = torch.from_numpy(np.ascontiguousarray(float_values(other, n, gen).reshape(shape)))
        return Case(f"{desc}+{other}j", name, tensor=torch.complex(re, im).to(TORCH_DTYPES[name]))
    if name in FLOATS:
        v = float_values(kind, n, gen).reshape(shape)
        t = torch.from_numpy(np.ascontiguousarray(v)).to(TORCH_DTYPES[name])
        return Case(desc, name, tensor=t)
    v = int_values(name, kind, n).reshape(shape)
    if name in NUMPY_ONLY:
        return Case(desc, name, array=v.astype(NUMPY_ONLY[name]))
    return Case(desc, name, tensor=torch.from_numpy(v).to(TORCH_DTYPES[name]))


def build_cases():
    gen = torch.Generator().manual_seed(1234)
    cases = []
    for name in list(TORCH_DTYPES) + list(NUMPY_ONLY):
        if name == "bool":
            kinds = ["mixed", "all_true", "all_false"]
        elif name in FLOATS or name in COMPLEX:
            kinds = FLOAT_KINDS
        else:
            kinds = ["small", "extremes", "spread"]
        for shape in SHAPES:
            for kind in kinds:
                cases.append(make_case(name, shape, kind, gen))
        # Row lengths around the line width, so suffixes land on both sides of it.
        for n in range(9, 40):
            kind = kinds[n % len(kinds)]
            cases.append(make_case(name, (n,), kind, gen))
            cases.append(make_case(name, (2, n), kind, gen))
    # An empty tensor whose suffixes do not fit on one line.
    big_empty = (0, 123456789, 123456789, 123456789, 123456789, 123456789)
    cases.append(Case(f"float64 {big_empty}", "float64", tensor=torch.empty(big_empty, dtype=torch.float64)))
    cases.append(Case(f"uint16 {big_empty}", "uint16", array=np.empty((0,) + (10,) * 17, np.uint16)))
    return cases


def run_c(exe, cases):
    stdin = "".join(c.line() + "\n" for c in cases).encode()
    proc = subprocess.run([exe, "--cases"], input=stdin, stdout=subprocess.PIPE, check=True)
    out = proc.stdout
    results = []
    pos = 0
    for _ in cases:
        nl = out.index(b"\n", pos)
        length = int(out[pos:nl])
        start = nl + 1
        results.append(out[start:start + length].decode())
        if out[start + length:start + length + 1] != b"\n":
            raise RuntimeError("malformed output from test_format --cases")
        pos = start + length + 1
    if pos != len(out):
        raise RuntimeError("trailing output from test_format --cases")
    return results


# Features the case list must reach, or the comparison proves less than it claims.
COVERAGE = {
    "summarised rows": ",  ...,",
    "summarised blocks": "...,\n",
    "blank lines between blocks": "\n\n",
    "wrapped rows": ",\n         ",
    "scientific notation": "e+",
    "small exponents": "e-",
    "nan": "nan",
    "-inf": "-inf",
    "suffix on its own line": ",\n       dtype=",
    "size suffix": "size=(",
    "padded True": " True",
    "integer-valued floats": "1.,",
}


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    exe = sys.argv[1]
    cases = build_cases()
    got = run_c(exe, cases)
    bad = 0
    seen = set()
    for case, text in zip(cases, got):
        want = case.expected()
        for feature, needle in COVERAGE.items():
            if needle in want:
                seen.add(feature)
        if text != want:
            bad += 1
            if bad <= 10:
                print(f"MISMATCH {case.desc}\n  torch: {want!r}\n  nnh5:  {text!r}")
    missing = sorted(set(COVERAGE) - seen)
    if missing:
        print("cases do not cover: " + ", ".join(missing))
        return 1
    if bad:
        print(f"{bad} of {len(cases)} cases differ from torch {torch.__version__}")
        return 1
    print(f"all {len(cases)} cases identical to torch {torch.__version__} repr()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
