! examples/heat/heat.f90 - a 2-D heat equation solver in Fortran and OpenMP
! whose source term is a PyTorch-trained MLP run through nnh5, checkpointed
! through nnh5's manager so that a killed run resumes where it stopped and
! ends bitwise where an uninterrupted run ends. examples/heat/README.md.
!
!   heat MODEL CKPT_DIR STEPS EVERY OUT [N [DURABLE]]
!
! du/dt = laplace(u) + s(u, x, y) on the unit square, u = 0 on the border,
! an N x N grid (default 48), explicit Euler with dt = h^2 / 5. Every step,
! each grid row is one batch of N points (features u, x, y) through the
! model MODEL: every OpenMP thread runs the one loaded model through a
! context of its own. Every EVERY steps the field u and the step go to a
! checkpoint in CKPT_DIR (the newest 2 kept); at start the newest checkpoint
! that verifies is resumed. At the end u is saved to OUT. DURABLE 0 skips
! the fsyncs of each checkpoint: saves stay atomic (a killed process never
! leaves a torn checkpoint) but a power cut may lose the newest ones.
!
! Why the result is bitwise reproducible: each row's model call has the same
! batch whatever thread runs it, BLAS runs one thread per caller, and the
! update of a point reads only the previous field (no reduction over threads).
program heat
  use nnh5
  use, intrinsic :: iso_fortran_env, only : int64, real64, output_unit
  !$ use omp_lib
  implicit none
  character(len=4096) :: model_path, dir, out_path, arg
  integer :: n, nthreads, t, i, j, errors, durable
  integer(int64) :: steps, every, step, first
  real(real64) :: h, dt
  real(real64), allocatable :: u(:,:), un(:,:), back(:,:), x(:)
  real(real64), allocatable :: feat(:,:), s(:,:)
  type(nnh5_model) :: model
  type(nnh5_model_ctx), allocatable :: ctx(:)
  type(nnh5_checkpoint_manager) :: mgr
  type(nnh5_checkpoint) :: ck

  if (command_argument_count() < 5) then
    print '(a)', "usage: heat MODEL CKPT_DIR STEPS EVERY OUT [N [DURABLE]]"
    stop 2
  end if
  call get_command_argument(1, model_path)
  call get_command_argument(2, dir)
  call get_command_argument(3, arg)
  read (arg, *) steps
  call get_command_argument(4, arg)
  read (arg, *) every
  call get_command_argument(5, out_path)
  n = 48
  if (command_argument_count() >= 6) then
    call get_command_argument(6, arg)
    read (arg, *) n
  end if
  durable = 1
  if (command_argument_count() >= 7) then
    call get_command_argument(7, arg)
    read (arg, *) durable
  end if

  h = 1.0_real64 / (n + 1)
  dt = h * h / 5
  allocate(u(0:n + 1, 0:n + 1), un(0:n + 1, 0:n + 1), x(n))
  do i = 1, n
    x(i) = i * h
  end do

  call check(nnh5_load_model(model, model_path), "load the model")
  ! one BLAS thread per caller: the callers are already the OpenMP threads
  call nnh5_set_num_threads(1)
  nthreads = 1
  !$ nthreads = omp_get_max_threads()
  allocate(ctx(0:nthreads - 1))
  do t = 0, nthreads - 1
    call check(nnh5_model_ctx_new(ctx(t), model), "a context")
  end do

  call check(nnh5_checkpoint_manager_open(mgr, dir, keep_last=2, durable=durable /= 0), &
             "open " // trim(dir))
  i = nnh5_checkpoint_manager_latest(ck, mgr)
  if (i == NNH5_OK) then
    call check(nnh5_checkpoint_get(ck, "u", back), "the checkpoint's field")
    if (any(shape(back) /= shape(u))) then
      print '(a)', "the checkpoint's grid is not this grid"
      stop 1
    end if
    u = back
    first = nnh5_checkpoint_step(ck) + 1
    print '(a, i0)', "resumed from step ", first - 1
    flush (output_unit)
  else if (i == NNH5_ERR_NOT_FOUND) then
    ! a fresh start: a warm square in one corner
    u = 0
    u(1:n / 3, 1:n / 3) = 1
    first = 1
    print '(a, i0, a, i0, a, i0, a)', "fresh start: ", n, " x ", n, " grid, ", nthreads, " threads"
    flush (output_unit)
  else
    call check(i, "the newest checkpoint")
  end if
  call nnh5_checkpoint_free(ck)
  un = 0

  do step = first, steps
    errors = 0
    !$omp parallel do schedule(static) private(i, t, feat, s) reduction(+:errors)
    do j = 1, n
      t = 0
      !$ t = omp_get_thread_num()
      allocate(feat(3, n), s(1, n))
      ! this row as a batch: feat(features, batch) is PyTorch's (batch, features)
      feat(1, :) = u(1:n, j)
      feat(2, :) = x
      feat(3, :) = x(j)
      if (nnh5_forward(ctx(t), feat, s) /= NNH5_OK) then
        !$omp critical
        print '(a)', "forward: " // nnh5_error_message()
        !$omp end critical
        errors = errors + 1
      end if
      do i = 1, n
        un(i, j) = u(i, j) + dt * ((u(i - 1, j) + u(i + 1, j) + u(i, j - 1) + u(i, j + 1) &
                                    - 4 * u(i, j)) / (h * h) + s(1, i))
      end do
      deallocate(feat, s)
    end do
    !$omp end parallel do
    if (errors > 0) stop 1
    u = un
    if (mod(step, every) == 0) then
      call check(nnh5_checkpoint_new(ck, step), "a checkpoint")
      call check(nnh5_checkpoint_set(ck, "u", u), "the field")
      call check(nnh5_checkpoint_set_metric(ck, "heat", total(u)), "the heat")
      call check(nnh5_checkpoint_manager_save(mgr, ck), "save a checkpoint")
      call nnh5_checkpoint_free(ck)
    end if
    if (mod(step, 100_int64) == 0) then
      print '(a, i0, a, f12.8)', "step ", step, ": heat ", total(u)
      flush (output_unit)
    end if
  end do

  call check(nnh5_save_tensor(out_path, u), "save " // trim(out_path))
  print '(a, i0, a, f12.8, a, f12.8)', "done: step ", steps, ", heat ", total(u), &
                                       ", max ", maxval(u)
  call check(nnh5_checkpoint_manager_close(mgr), "close the folder")
  do t = 0, nthreads - 1
    call nnh5_model_ctx_free(ctx(t))
  end do
  call nnh5_model_free(model)
  ! a main program's arrays are never freed by the runtime (LeakSanitizer says so)
  deallocate(u, un, x, ctx)
  if (allocated(back)) deallocate(back)

contains

  ! The heat in the plate: the integral of u, summed in one fixed order.
  real(real64) function total(f)
    real(real64), intent(in) :: f(0:, 0:)
    total = sum(f) * h * h
  end function

  subroutine check(st, what)
    integer, intent(in) :: st
    character(len=*), intent(in) :: what
    if (st /= NNH5_OK) then
      print '(a)', what // ": " // nnh5_status_name(st) // ": " // nnh5_error_message()
      stop 1
    end if
  end subroutine
end program
