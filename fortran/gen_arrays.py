#!/usr/bin/python3
"""Write the array procedures of the Fortran module nnh5 (fortran/nnh5.f90).

Fortran 2008 has no procedure generic over type and rank, so each array
call of the module (save and load a tensor, set and get a state dict
entry or a checkpoint tensor, the forward pass) exists once per Fortran
type and rank. This script writes them into two files that nnh5.f90
includes: nnh5_arrays_interfaces.inc (the generic interfaces) and
nnh5_arrays_procedures.inc (the procedures). Both are committed; the test
fortran-generated checks that they are what this script writes.

    fortran/gen_arrays.py [--check]
"""
import os
import sys

# suffix, Fortran type, nnh5 dtype constant
TYPES = [
    ("i8", "integer(int8)", "NNH5_INT8"),
    ("i16", "integer(int16)", "NNH5_INT16"),
    ("i32", "integer(int32)", "NNH5_INT32"),
    ("i64", "integer(int64)", "NNH5_INT64"),
    ("r32", "real(real32)", "NNH5_FLOAT32"),
    ("r64", "real(real64)", "NNH5_FLOAT64"),
    ("l", "logical", "NNH5_BOOL"),
    ("c32", "complex(real32)", "NNH5_COMPLEX64"),
    ("c64", "complex(real64)", "NNH5_COMPLEX128"),
]
RANKS = range(0, 5)
FORWARD_TYPES = ["r32", "r64"]
FORWARD_RANKS = range(1, 5)

GENERICS = {
    "nnh5_save_tensor": "save_tensor",
    "nnh5_load_tensor": "load_tensor",
    "nnh5_state_dict_set": "sd_set",
    "nnh5_state_dict_get": "sd_get",
    "nnh5_checkpoint_set": "ck_set",
    "nnh5_checkpoint_get": "ck_get",
}


def dims(rank, what=":"):
    return "" if rank == 0 else "(" + ",".join([what] * rank) + ")"


def storage(suffix):
    """The Fortran type the tensor's elements have in memory."""
    return "integer(int8)" if suffix == "l" else dict((s, t) for s, t, _ in TYPES)[suffix]


def procs(suffix, ftype, dtype, rank):
    name = f"{suffix}_{rank}"
    arr_in = f"{ftype}, intent(in), target{', contiguous' if rank else ''} :: a{dims(rank)}"
    if rank:
        arr_out = f"{ftype}, intent(out), allocatable :: a{dims(rank)}"
    else:
        arr_out = f"{ftype}, intent(out) :: a"
    ptr = f"{storage(suffix)}, pointer :: fp{dims(rank)}"
    to_c = "merge(1_int8, 0_int8, a)" if suffix == "l" else "a"
    from_c = "fp /= 0_int8" if suffix == "l" else "fp"
    if rank:
        fshape = "shape(a, kind=int64)"
        cptr = "call c_f_pointer(p, fp, fs)"
        alloc = "allocate(a(" + ", ".join(f"fs({k})" for k in range(1, rank + 1)) + "))"
    else:
        cptr = "call c_f_pointer(p, fp)"
    out = []
    # an owning tensor holding a copy of a, shape reversed (module comment, "Memory order")
    out.append(f"""
  ! A new tensor holding a copy of a ({ftype}, rank {rank}).
  function new_tensor_{name}(t, a) result(st)
    type(c_ptr), intent(out) :: t
    {arr_in}
    integer :: st
    integer(int64) :: cs(max({rank}, 1))
    type(c_ptr) :: p
    {ptr}""")
    if rank:
        out.append(f"""    integer(int64) :: fs({rank})
    fs = {fshape}
    cs({rank}:1:-1) = fs""")
    else:
        out.append("    cs = 0")
    out.append(f"""    st = c_nnh5_tensor_new(t, {dtype}, int({rank}, c_size_t), cs)
    if (st /= NNH5_OK) return""")
    if rank:
        out.append(f"""    if (size(a, kind=int64) == 0) return
    p = c_nnh5_tensor_mutable_data(t)
    {cptr}
    fp = {to_c}
  end function""")
    else:
        out.append(f"""    p = c_nnh5_tensor_mutable_data(t)
    {cptr}
    fp = {to_c}
  end function""")
    # copy a tensor into a, checking dtype and rank first
    out.append(f"""
  ! Copy tensor t into a ({ftype}, rank {rank}); what names t in errors.
  function from_tensor_{name}(a, t, what) result(st)
    {arr_out}
    type(c_ptr), intent(in) :: t
    character(len=*), intent(in) :: what
    integer :: st
    type(c_ptr) :: p
    {ptr}""")
    if rank:
        out.append(f"""    integer(int64) :: fs({rank})
    integer(int64), pointer :: cs(:)""")
    out.append(f"""    st = c_nnh5_tensor_expect(t, {dtype}, int({rank}, c_size_t), cstr(what))
    if (st /= NNH5_OK) return""")
    if rank:
        out.append(f"""    call c_f_pointer(c_nnh5_tensor_shape(t), cs, [{rank}])
    fs = cs({rank}:1:-1)
    {alloc}
    if (size(a, kind=int64) == 0) return""")
    out.append(f"""    p = c_nnh5_tensor_data(t)
    {cptr}
    a = {from_c}
  end function""")
    # the public specifics, all on the two above
    out.append(f"""
  function save_tensor_{name}(path, a) result(st)
    character(len=*), intent(in) :: path
    {arr_in}
    integer :: st
    type(c_ptr) :: t
    st = new_tensor_{name}(t, a)
    if (st /= NNH5_OK) return
    st = c_nnh5_save_tensor(cstr(path), t)
    call c_nnh5_tensor_free(t)
  end function

  function load_tensor_{name}(path, a) result(st)
    character(len=*), intent(in) :: path
    {arr_out}
    integer :: st
    type(c_ptr) :: t
    st = c_nnh5_load_tensor(t, cstr(path))
    if (st /= NNH5_OK) return
    st = from_tensor_{name}(a, t, "load '" // trim(path) // "'")
    call c_nnh5_tensor_free(t)
  end function

""")
    # a state dict and a checkpoint hold copies of arrays by name alike
    for prefix, htype, c_set, c_get, label in (
            ("sd", "nnh5_state_dict", "c_nnh5_dict_set", "c_nnh5_dict_get", "key"),
            ("ck", "nnh5_checkpoint", "c_nnh5_checkpoint_set_tensor", "c_nnh5_checkpoint_tensor",
             "checkpoint tensor")):
        out.append(f"""
  function {prefix}_set_{name}(h, key, a) result(st)
    type({htype}), intent(inout) :: h
    character(len=*), intent(in) :: key
    {arr_in}
    integer :: st
    type(c_ptr) :: t
    st = new_tensor_{name}(t, a)
    if (st /= NNH5_OK) return
    st = {c_set}(h%p, cstr(key), t)
    if (st /= NNH5_OK) call c_nnh5_tensor_free(t)
  end function

  function {prefix}_get_{name}(h, key, a) result(st)
    type({htype}), intent(in) :: h
    character(len=*), intent(in) :: key
    {arr_out}
    integer :: st
    st = from_tensor_{name}(a, {c_get}(h%p, cstr(key)), "{label} '" // trim(key) // "'")
  end function""")
    return "\n".join(out)


def forward(suffix, rank):
    ftype = dict((s, t) for s, t, _ in TYPES)[suffix]
    dtype = dict((s, d) for s, _, d in TYPES)[suffix]
    name = f"{suffix}_{rank}"
    out = []
    for kind, htype, c_call in (("model", "nnh5_model", "c_nnh5_model_forward_into"),
                                ("ctx", "nnh5_model_ctx", "c_nnh5_model_forward_ctx_into")):
        out.append(f"""
  function forward_{kind}_{name}(h, x, y) result(st)
    type({htype}), intent(inout) :: h
    {ftype}, intent(in), target, contiguous :: x{dims(rank)}
    {ftype}, intent(inout), target, contiguous :: y{dims(rank)}
    integer :: st
    type(c_ptr) :: tx, ty
    st = views(tx, ty, {dtype}, {rank}, shape(x, kind=int64), shape(y, kind=int64), &
               c_loc(x), c_loc(y), storage_size(x) / 8)
    if (st /= NNH5_OK) return
    st = {c_call}(h%p, tx, ty)
    call c_nnh5_tensor_free(tx)
    call c_nnh5_tensor_free(ty)
  end function""")
    return "\n".join(out)


def generate():
    head = "! Generated by fortran/gen_arrays.py: do not edit.\n"
    iface = [head]
    for generic, prefix in GENERICS.items():
        names = [f"{prefix}_{s}_{r}" for s, _, _ in TYPES for r in RANKS]
        iface.append(f"  interface {generic}\n")
        for i in range(0, len(names), 4):
            iface.append("    module procedure " + ", ".join(names[i:i + 4]) + "\n")
        iface.append(f"  end interface {generic}\n")
    names = [f"forward_{k}_{s}_{r}" for k in ("model", "ctx") for s in FORWARD_TYPES
             for r in FORWARD_RANKS]
    iface.append("  interface nnh5_forward\n")
    for i in range(0, len(names), 4):
        iface.append("    module procedure " + ", ".join(names[i:i + 4]) + "\n")
    iface.append("  end interface nnh5_forward\n")
    body = [head]
    for s, t, d in TYPES:
        for r in RANKS:
            body.append(procs(s, t, d, r) + "\n")
    for s in FORWARD_TYPES:
        for r in FORWARD_RANKS:
            body.append(forward(s, r) + "\n")
    return "".join(iface), "".join(body)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    files = dict(zip(("nnh5_arrays_interfaces.inc", "nnh5_arrays_procedures.inc"), generate()))
    if sys.argv[1:] == ["--check"]:
        stale = [n for n, text in files.items()
                 if open(os.path.join(here, n)).read() != text]
        if stale:
            print("stale (run fortran/gen_arrays.py):", ", ".join(stale))
            return 1
        return 0
    for n, text in files.items():
        with open(os.path.join(here, n), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
