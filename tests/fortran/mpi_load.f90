! tests/fortran/mpi_load.f90 - the module nnh5_mpi under mpirun: every rank
! loads one model and one state dict collectively (root 0 reads), runs the
! same forward pass, and gets what every other rank gets; a missing file
! gives the same status on every rank.
!   mpirun -np N mpi_load MODEL DIR
! Rank 0 writes DIR/x.h5 (the input) and DIR/y.h5 (its output) for
! mpi_load.sh to compare with the C library's forward pass.
program mpi_load
  use mpi
  use, intrinsic :: iso_fortran_env, only : real32, int32
  use nnh5
  use nnh5_mpi
  use check_util
  implicit none
  integer :: ierr, rank, nranks, st, i, j, lo, hi
  type(nnh5_model) :: model
  type(nnh5_state_dict) :: sd, back
  real(real32) :: x(4, 3), y(2, 3), w(5)
  real(real32), allocatable :: got(:)
  integer(int32) :: bits(6), bits_min(6), bits_max(6)
  character(len=4096) :: path, dir

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  call get_command_argument(1, path)
  call get_command_argument(2, dir)
  call nnh5_set_num_threads(1)

  ! The model, loaded once for all ranks; the same output everywhere.
  call ok(nnh5_mpi_load_model(model, MPI_COMM_WORLD, 0, path), "nnh5_mpi_load_model")
  do j = 1, 3
    do i = 1, 4
      x(i, j) = real(i, real32) * 0.25_real32 - real(j, real32) * 0.5_real32
    end do
  end do
  call ok(nnh5_forward(model, x, y), "forward")
  bits = transfer(y, bits)
  call MPI_Allreduce(bits, bits_min, 6, MPI_INTEGER, MPI_MIN, MPI_COMM_WORLD, ierr)
  call MPI_Allreduce(bits, bits_max, 6, MPI_INTEGER, MPI_MAX, MPI_COMM_WORLD, ierr)
  call expect(all(bits_min == bits_max), "every rank's forward pass is the same, bitwise")
  if (rank == 0) then
    call ok(nnh5_save_tensor(trim(dir) // "/x.h5", x), "save x")
    call ok(nnh5_save_tensor(trim(dir) // "/y.h5", y), "save y")
  end if
  call nnh5_model_free(model)

  ! A state dict written by rank 0, loaded collectively.
  if (rank == 0) then
    w = [(real(i, real32) / 3.0_real32, i = 1, 5)]
    call ok(nnh5_state_dict_new(sd), "state dict")
    call ok(nnh5_state_dict_set(sd, "layer.weight", w), "set")
    call ok(nnh5_save_state_dict(trim(dir) // "/sd.h5", sd), "save state dict")
    call nnh5_state_dict_free(sd)
  end if
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  call ok(nnh5_mpi_load_state_dict(back, MPI_COMM_WORLD, 0, trim(dir) // "/sd.h5"), &
          "nnh5_mpi_load_state_dict")
  call ok(nnh5_state_dict_get(back, "layer.weight", got), "get")
  w = [(real(i, real32) / 3.0_real32, i = 1, 5)]
  if (allocated(got)) then
    call expect(size(got) == 5, "the state dict's tensor has its shape")
    if (size(got) == 5) call expect(all(transfer(got, bits, 5) == transfer(w, bits, 5)), &
                                    "the state dict's tensor on every rank, bitwise")
    deallocate(got)
  end if
  call nnh5_state_dict_free(back)

  ! A missing file: the same failure on every rank, no model.
  st = nnh5_mpi_load_model(model, MPI_COMM_WORLD, 0, trim(dir) // "/missing.h5")
  call MPI_Allreduce(st, lo, 1, MPI_INTEGER, MPI_MIN, MPI_COMM_WORLD, ierr)
  call MPI_Allreduce(st, hi, 1, MPI_INTEGER, MPI_MAX, MPI_COMM_WORLD, ierr)
  call expect(st == NNH5_ERR_NOT_FOUND, "a missing file is NNH5_ERR_NOT_FOUND")
  call expect(lo == hi, "every rank has the same status")
  call expect(index(nnh5_error_message(), "missing.h5") > 0, "the message names the file")

  call MPI_Allreduce(failures, lo, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  call MPI_Finalize(ierr)
  if (lo > 0 .and. failures == 0) failures = 1
  if (rank == 0) call finish("nnh5_mpi: collective model and state dict loads")
  if (rank /= 0 .and. failures > 0) error stop 1
end program
