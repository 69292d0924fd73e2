! tests/fortran/check_util.f90 - what the Fortran test programs share: a
! failure count and the checks that add to it, printing why.
module check_util
  use nnh5
  implicit none
  private
  integer, public :: failures = 0
  public :: ok, expect, finish
contains
  ! A call that must succeed.
  subroutine ok(st, what)
    integer, intent(in) :: st
    character(len=*), intent(in) :: what
    if (st /= NNH5_OK) then
      print '(a)', what // ": " // nnh5_status_name(st) // ": " // nnh5_error_message()
      failures = failures + 1
    end if
  end subroutine

  subroutine expect(cond, what)
    logical, intent(in) :: cond
    character(len=*), intent(in) :: what
    if (.not. cond) then
      print '(a)', "FAILED: " // what
      failures = failures + 1
    end if
  end subroutine

  ! The end of a test program: its exit status says whether anything failed.
  subroutine finish(what)
    character(len=*), intent(in) :: what
    if (failures > 0) then
      print '(i0, a)', failures, " failures"
      error stop 1
    end if
    print '(a)', "ok: " // what
  end subroutine
end module
