#!/usr/bin/python3
"""Write fortran_check.f90, the Fortran side of the round-trip test
(tests/fortran/roundtrip.py drives it), from spec.py: one block per dtype
and shape, because Fortran 2008 cannot loop over types and ranks.

    gen_check.py OUT.f90

The program (modes):
  write DIR         save every array as DIR/f_<type>_<tag>.h5 and all of
                    them as one state dict DIR/f_sd.h5 (keys "<type>.<tag>")
  check DIR P       load DIR/P_<type>_<tag>.h5 and DIR/P_sd.h5 and compare
                    them bitwise with the arrays it would write
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spec  # noqa: E402

VAL_INT = """
  pure function val_i8(k) result(v)
    integer(int64), intent(in) :: k
    integer(int8) :: v
    v = int(mod(k * 37 + 11, 256_int64) - 128, int8)
  end function
  pure function val_i16(k) result(v)
    integer(int64), intent(in) :: k
    integer(int16) :: v
    v = int(mod(k * 4099 + 7, 65536_int64) - 32768, int16)
  end function
  pure function val_i32(k) result(v)
    integer(int64), intent(in) :: k
    integer(int32) :: v
    v = int(mod(k * 1000003 + 5, 4294967296_int64) - 2147483648_int64, int32)
  end function
  pure function val_i64(k) result(v)
    integer(int64), intent(in) :: k
    integer(int64) :: v
    if (k == 0) then
      v = -huge(v)
      v = v - 1_int64   ! -2**63, outside the symmetric range a constant may have
    else if (k == 1) then
      v = huge(v)
    else
      v = k * 123456789012345_int64 - 2000000000000000_int64
    end if
  end function
{VAL_REAL}{VAL_COMPLEX}  pure function val_l(k) result(v)
    integer(int64), intent(in) :: k
    logical :: v
    v = mod(k, 3_int64) == 0
  end function
"""

VAL_REAL = "".join(f"""  pure function val_r{bits}(k) result(v)
    integer(int64), intent(in) :: k
    real(real{bits}) :: v
    if (k == 0) then
      v = huge(v)
    else if (k == 1) then
      v = -tiny(v) / 2
    else if (k == 2) then
      v = sign(0.0_real{bits}, -1.0_real{bits})
    else
      v = real(k - 7, real{bits}) * 0.375_real{bits}
    end if
  end function
""" for bits in (32, 64))

VAL_COMPLEX = "".join(f"""  pure function val_c{bits}(k) result(v)
    integer(int64), intent(in) :: k
    complex(real{bits}) :: v
    v = cmplx(val_r{bits}(k), val_r{bits}(k + 3_int64), real{bits})
  end function
""" for bits in (32, 64))

# bitwise comparison of two arrays of a type: reals through their bits
SAME = {
    "i8": "all(b == e)", "i16": "all(b == e)", "i32": "all(b == e)", "i64": "all(b == e)",
    "r32": "all(transfer(b, [0_int32]) == transfer(e, [0_int32]))",
    "r64": "all(transfer(b, [0_int64]) == transfer(e, [0_int64]))",
    "l": "all(b .eqv. e)",
    "c32": "all(transfer(b, [0_int32]) == transfer(e, [0_int32]))",
    "c64": "all(transfer(b, [0_int64]) == transfer(e, [0_int64]))",
}
SAME0 = {
    "i8": "b == e", "i16": "b == e", "i32": "b == e", "i64": "b == e",
    "r32": "transfer(b, 0_int32) == transfer(e, 0_int32)",
    "r64": "transfer(b, 0_int64) == transfer(e, 0_int64)",
    "l": "b .eqv. e",
    "c32": "all(transfer(b, [0_int32]) == transfer(e, [0_int32]))",
    "c64": "all(transfer(b, [0_int64]) == transfer(e, [0_int64]))",
}


def decl(t, shape, name, alloc):
    ftype = spec.TYPES[t][0]
    if not shape:
        return f"{ftype} :: {name}"
    d = ",".join(":" for _ in shape)
    return f"{ftype}, allocatable :: {name}({d})"


def expected(t, shape):
    n = 1
    for s in shape:
        n *= s
    if not shape:
        return f"val_{t}(0_int64)"
    return f"reshape([(val_{t}(k), k = 0, {n - 1})], [{', '.join(map(str, shape))}])"


def fill(t, shape):
    """e = the expected array (allocated explicitly when empty: gfortran warns on empty reshapes)."""
    n = 1
    for s in shape:
        n *= s
    if shape and n == 0:
        return f"allocate(e({', '.join(map(str, shape))}))"
    return f"e = {expected(t, shape)}"


def write_block(t, tag, shape):
    return f"""    block
      {decl(t, shape, 'e', True)}
      {fill(t, shape)}
      call ok(nnh5_save_tensor(dir // "/f_{t}_{tag}.h5", e), "save {t} {tag}")
      call ok(nnh5_state_dict_set(sd, "{t}.{tag}", e), "state dict set {t} {tag}")
    end block
"""


def check_block(t, tag, shape):
    same = SAME0[t] if not shape else SAME[t]
    shape_ok = ".true." if not shape else f"all(shape(b) == [{', '.join(map(str, shape))}])"
    return f"""    block
      {decl(t, shape, 'e', True)}
      {decl(t, shape, 'b', True)}
      {fill(t, shape)}
      call ok(nnh5_load_tensor(dir // "/" // p // "_{t}_{tag}.h5", b), &
              "load " // p // " {t} {tag}")
      call expect({shape_ok}, "shape " // p // " {t} {tag}")
      if ({shape_ok}) call expect({same}, &
                                  "bitwise " // p // " {t} {tag}")
      call ok(nnh5_state_dict_get(sd, "{t}.{tag}", b), "state dict get " // p // " {t} {tag}")
      call expect({shape_ok}, "state dict shape " // p // " {t} {tag}")
      if ({shape_ok}) call expect({same}, &
                                  "state dict bitwise " // p // " {t} {tag}")
    end block
"""


def main():
    out = sys.argv[1]
    w = []
    c = []
    for t in spec.TYPES:
        for tag, shape in spec.SHAPES.items():
            w.append(write_block(t, tag, shape))
            c.append(check_block(t, tag, shape))
    src = f"""! Generated by tests/fortran/gen_check.py from spec.py: the Fortran side of
! tests/fortran/roundtrip.py.
program fortran_check
  use nnh5
  use check_util
  use, intrinsic :: iso_fortran_env, only : int8, int16, int32, int64, real32, real64
  implicit none
  character(len=4096) :: mode, arg2, arg3
  integer(int64) :: k
  call get_command_argument(1, mode)
  call get_command_argument(2, arg2)
  call get_command_argument(3, arg3)
  select case (trim(mode))
  case ("write")
    call write_all(trim(arg2))
  case ("check")
    call check_all(trim(arg2), trim(arg3))
  case default
    print '(a)', "usage: fortran_check write DIR | check DIR PREFIX"
    error stop 2
  end select
  call finish(trim(mode) // " " // trim(arg3))
contains
{VAL_INT.replace('{VAL_REAL}', VAL_REAL).replace('{VAL_COMPLEX}', VAL_COMPLEX)}
  subroutine write_all(dir)
    character(len=*), intent(in) :: dir
    type(nnh5_state_dict) :: sd
    call ok(nnh5_state_dict_new(sd), "state dict new")
{''.join(w)}    call ok(nnh5_save_state_dict(dir // "/f_sd.h5", sd), "save state dict")
    call nnh5_state_dict_free(sd)
  end subroutine

  subroutine check_all(dir, p)
    character(len=*), intent(in) :: dir, p
    type(nnh5_state_dict) :: sd
    call ok(nnh5_load_state_dict(sd, dir // "/" // p // "_sd.h5"), "load state dict " // p)
    call expect(nnh5_state_dict_len(sd) == {len(spec.TYPES) * len(spec.SHAPES)}, &
                "state dict length")
{''.join(c)}    call nnh5_state_dict_free(sd)
  end subroutine
end program
"""
    with open(out, "w") as f:
        f.write(src)


if __name__ == "__main__":
    main()
