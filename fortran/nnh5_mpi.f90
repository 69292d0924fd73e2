! fortran/nnh5_mpi.f90 - the Fortran 2008 module nnh5_mpi: collective loads
! of <nnh5/mpi.h> for MPI simulation codes (doc/FORTRAN.md, "MPI").
!
! Every rank of a communicator that needs the same model or state dict calls
! the same function: one rank (root) opens and reads the file, and every
! rank gets its own model or state dict (a model's bytes are broadcast and
! judged by the load policy on every rank; a state dict is loaded and judged
! by root, and its tensors broadcast). A failure on any rank is every rank's
! status. Communicators are Fortran handles: the integer of `use mpi`, or
! comm%MPI_VAL of `use mpi_f08`.
!
! Built with the MPI flavour only (libnnh5_fortran_mpi, with nnh5_mpi_f.c);
! a program links it with libnnh5_fortran and libnnh5_mpi.
module nnh5_mpi
  use, intrinsic :: iso_c_binding
  use nnh5, only : nnh5_model, nnh5_state_dict
  implicit none
  private

  public :: nnh5_mpi_load_model, nnh5_mpi_load_state_dict

  interface
    function c_load_model(m, comm, root, path) bind(c, name="nnh5_mpi_f_load_model") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr) :: m
      integer(c_int), value :: comm, root
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: st
    end function
    function c_load_state_dict(d, comm, root, path, name) &
        bind(c, name="nnh5_mpi_f_load_state_dict") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr) :: d
      integer(c_int), value :: comm, root
      character(kind=c_char), intent(in) :: path(*), name(*)
      integer(c_int) :: st
    end function
  end interface

contains

  ! Collective over comm: the model saved at path, on every rank (root reads
  ! the file). Free it with nnh5_model_free.
  integer function nnh5_mpi_load_model(model, comm, root, path) result(st)
    type(nnh5_model), intent(inout) :: model
    integer, intent(in) :: comm, root
    character(len=*), intent(in) :: path
    st = c_load_model(model%p, int(comm, c_int), int(root, c_int), trim(path) // c_null_char)
  end function

  ! Collective over comm: the state dict at the root of path, on every rank
  ! (root reads the file). Free it with nnh5_state_dict_free.
  integer function nnh5_mpi_load_state_dict(sd, comm, root, path) result(st)
    type(nnh5_state_dict), intent(inout) :: sd
    integer, intent(in) :: comm, root
    character(len=*), intent(in) :: path
    st = c_load_state_dict(sd%p, int(comm, c_int), int(root, c_int), trim(path) // c_null_char, &
                           "/" // c_null_char)
  end function
end module nnh5_mpi
