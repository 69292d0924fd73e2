! tests/fortran/fortran_api.f90 - the module nnh5 beyond plain round trips
! (tests/fortran/roundtrip.py drives it):
!   forward DIR     models DIR/model_<r32|r64>.h5 (saved by PyTorch through
!                   tools/nnh5.py) on DIR/x_*.h5 and DIR/x3_*.h5 through the
!                   model, through a context, and from every OpenMP thread
!                   with a context each: bitwise equal to DIR/c_y*_*.h5, the
!                   C API's outputs; writes DIR/f_y*_*.h5
!   errors DIR      statuses and messages of failing calls
!   checkpoint DIR  a simulation's fields through the checkpoint manager
program fortran_api
  use nnh5
  use check_util
  use, intrinsic :: iso_fortran_env, only : int8, int32, int64, real32, real64
  implicit none
  character(len=4096) :: mode, dir
  call get_command_argument(1, mode)
  call get_command_argument(2, dir)
  select case (trim(mode))
  case ("forward")
    call forward_r32(trim(dir))
    call forward_r64(trim(dir))
  case ("errors")
    call errors(trim(dir))
  case ("checkpoint")
    call checkpoint(trim(dir))
  case default
    print '(a)', "usage: fortran_api forward|errors|checkpoint DIR"
    error stop 2
  end select
  call finish(trim(mode))
contains

  ! A failing call: status st, and a message containing part.
  subroutine expect_error(st, want, part, what)
    integer, intent(in) :: st, want
    character(len=*), intent(in) :: part, what
    character(len=:), allocatable :: msg
    msg = nnh5_error_message()
    if (st /= want .or. index(msg, part) == 0) then
      print '(a)', "FAILED: " // what // ": got " // nnh5_status_name(st) // " '" // msg // &
                   "', want " // nnh5_status_name(want) // " '" // part // "'"
      failures = failures + 1
    end if
  end subroutine

  subroutine forward_r32(dir)
    character(len=*), intent(in) :: dir
    type(nnh5_model) :: m
    type(nnh5_model_ctx) :: ctx
    real(real32), allocatable :: x(:,:), y(:,:), yc(:,:), yt(:,:), yref(:,:)
    real(real32), allocatable :: x3(:,:,:), y3(:,:,:), y3ref(:,:,:)
    integer :: bad, r
    call ok(nnh5_load_model(m, dir // "/model_r32.h5"), "load model r32")
    call expect(nnh5_model_dtype(m) == NNH5_FLOAT32, "model dtype float32")
    call ok(nnh5_load_tensor(dir // "/x_r32.h5", x), "load x r32")
    call ok(nnh5_load_tensor(dir // "/c_y_r32.h5", yref), "load C's y r32")
    call ok(nnh5_load_tensor(dir // "/x3_r32.h5", x3), "load x3 r32")
    call ok(nnh5_load_tensor(dir // "/c_y3_r32.h5", y3ref), "load C's y3 r32")
    ! x(features, batch): PyTorch's (batch, features)
    call expect(size(x, 1) == 6 .and. size(x, 2) == 5, "x(features, batch) is (6, 5)")
    allocate(y(size(yref, 1), size(yref, 2)), yc(size(yref, 1), size(yref, 2)))
    allocate(y3(size(y3ref, 1), size(y3ref, 2), size(y3ref, 3)))
    call ok(nnh5_forward(m, x, y), "forward r32")
    call expect(all(transfer(y, [0_int32]) == transfer(yref, [0_int32])), "forward r32 == C bitwise")
    call ok(nnh5_forward(m, x3, y3), "forward r32 rank 3")
    call expect(all(transfer(y3, [0_int32]) == transfer(y3ref, [0_int32])), &
                "forward r32 rank 3 == C bitwise")
    call ok(nnh5_model_ctx_new(ctx, m), "ctx new")
    call ok(nnh5_forward(ctx, x, yc), "forward ctx r32")
    call expect(all(transfer(yc, [0_int32]) == transfer(yref, [0_int32])), "forward ctx r32 == C bitwise")
    call nnh5_model_ctx_free(ctx)
    call nnh5_model_ctx_free(ctx)   ! null: a no-op
    call ok(nnh5_save_tensor(dir // "/f_y_r32.h5", y), "save y r32")
    call ok(nnh5_save_tensor(dir // "/f_y3_r32.h5", y3), "save y3 r32")
    ! every OpenMP thread, one context each, on the shared model
    call nnh5_set_num_threads(1)
    bad = 0
    !$omp parallel private(ctx, yt, r) reduction(+:bad)
    allocate(yt(size(yref, 1), size(yref, 2)))
    if (nnh5_model_ctx_new(ctx, m) /= NNH5_OK) bad = bad + 1
    do r = 1, 50
      yt = 0
      if (nnh5_forward(ctx, x, yt) /= NNH5_OK) bad = bad + 1
      if (any(transfer(yt, [0_int32]) /= transfer(yref, [0_int32]))) bad = bad + 1
    end do
    call nnh5_model_ctx_free(ctx)
    deallocate(yt)
    !$omp end parallel
    call expect(bad == 0, "OpenMP threads with a context each == C bitwise")
    call nnh5_model_free(m)
    call nnh5_model_free(m)   ! null: a no-op
  end subroutine

  subroutine forward_r64(dir)
    character(len=*), intent(in) :: dir
    type(nnh5_model) :: m
    type(nnh5_model_ctx) :: ctx
    real(real64), allocatable :: x(:,:), y(:,:), yref(:,:)
    call ok(nnh5_load_model(m, dir // "/model_r64.h5"), "load model r64")
    call expect(nnh5_model_dtype(m) == NNH5_FLOAT64, "model dtype float64")
    call ok(nnh5_load_tensor(dir // "/x_r64.h5", x), "load x r64")
    call ok(nnh5_load_tensor(dir // "/c_y_r64.h5", yref), "load C's y r64")
    allocate(y(size(yref, 1), size(yref, 2)))
    call ok(nnh5_model_ctx_new(ctx, m), "ctx new r64")
    call ok(nnh5_forward(ctx, x, y), "forward ctx r64")
    call expect(all(transfer(y, [0_int64]) == transfer(yref, [0_int64])), "forward ctx r64 == C bitwise")
    y = 0
    call ok(nnh5_forward(m, x, y), "forward r64")
    call expect(all(transfer(y, [0_int64]) == transfer(yref, [0_int64])), "forward r64 == C bitwise")
    call ok(nnh5_save_tensor(dir // "/f_y_r64.h5", y), "save y r64")
    call nnh5_model_ctx_free(ctx)
    call nnh5_model_free(m)
  end subroutine

  subroutine errors(dir)
    character(len=*), intent(in) :: dir
    real(real32), allocatable :: r2(:,:), r1(:)
    integer(int8), allocatable :: i1(:)
    real(real32) :: y_wrong(2, 5)
    type(nnh5_state_dict) :: sd
    type(nnh5_model) :: m
    type(nnh5_checkpoint) :: ck
    call nnh5_error_clear()
    call expect(nnh5_error_status() == NNH5_OK, "cleared status")
    call expect(nnh5_error_message() == "", "cleared message")
    call expect_error(nnh5_load_tensor(dir // "/missing.h5", r2), NNH5_ERR_NOT_FOUND, &
                      "missing.h5", "load a missing file")
    call expect(nnh5_error_status() == NNH5_ERR_NOT_FOUND, "error status of the last failure")
    call expect(nnh5_status_name(NNH5_ERR_TYPE) == "NNH5_ERR_TYPE", "status name")
    call expect_error(nnh5_load_tensor(dir // "/c_i32_r2.h5", r2), NNH5_ERR_TYPE, &
                      "stored int32 of shape (2, 3), expected float32 with 2 dimensions", &
                      "int32 file into a real32 array")
    call expect(.not. allocated(r2), "nothing allocated on a refusal")
    call expect_error(nnh5_load_tensor(dir // "/c_r32_r2.h5", r1), NNH5_ERR_SHAPE, &
                      "expected float32 with 1 dimension", "rank 2 file into a rank 1 array")
    call expect_error(nnh5_load_tensor(dir // "/p_u8_r1.h5", i1), NNH5_ERR_TYPE, &
                      "stored uint8", "uint8 (no Fortran type) into int8")
    ! trailing blanks of a fixed-length name are not part of it
    block
      character(len=200) :: padded
      padded = dir // "/c_r32_r2.h5"
      call ok(nnh5_load_tensor(padded, r2), "load through a blank-padded path")
    end block
    call ok(nnh5_state_dict_new(sd), "state dict new")
    call ok(nnh5_state_dict_set(sd, "a.b", r2), "state dict set")
    call expect(nnh5_state_dict_has(sd, "a.b"), "has a.b")
    call expect(.not. nnh5_state_dict_has(sd, "a"), "has not a")
    call expect(nnh5_state_dict_key(sd, 1) == "a.b", "key 1")
    call expect(nnh5_state_dict_key(sd, 2) == "", "key past the end")
    call expect(nnh5_state_dict_len(sd) == 1, "length")
    call expect_error(nnh5_state_dict_get(sd, "nope", r1), NNH5_ERR_NOT_FOUND, &
                      "key 'nope': not found", "missing state dict key")
    call ok(nnh5_state_dict_set(sd, "c/d", r2), "state dict set c/d")
    call expect_error(nnh5_save_state_dict(dir // "/bad_sd.h5", sd), NNH5_ERR_INVALID, "c/d", &
                      "a key with '/' refused by the save")
    call nnh5_state_dict_free(sd)
    call ok(nnh5_load_model(m, dir // "/model_r32.h5"), "load model")
    call expect(index(nnh5_model_format(m), "Linear(in_features=6, out_features=16") > 0, &
                "model format")
    call expect_error(nnh5_forward(m, r2, y_wrong), NNH5_ERR_SHAPE, "", "forward of a wrong width")
    call nnh5_model_free(m)
    call ok(nnh5_checkpoint_new(ck, 0_int64), "checkpoint new")
    call expect_error(nnh5_checkpoint_get(ck, "u", r2), NNH5_ERR_NOT_FOUND, &
                      "checkpoint tensor 'u': not found", "missing checkpoint tensor")
    call nnh5_checkpoint_free(ck)
    call expect_error(nnh5_checkpoint_new(ck, -1_int64), NNH5_ERR_INVALID, "", "negative step")
  end subroutine

  subroutine checkpoint(dir)
    character(len=*), intent(in) :: dir
    type(nnh5_checkpoint_manager) :: mgr
    type(nnh5_checkpoint) :: ck
    real(real64), allocatable :: u(:,:), back(:,:)
    integer(int64), allocatable :: counts(:)
    integer(int64) :: step, n
    logical :: flag
    real(real64) :: metric
    integer :: i, j
    allocate(u(4, 3))
    call expect_error(nnh5_checkpoint_manager_open(mgr, dir // "/no/such/folder/x"), &
                      NNH5_ERR_IO, "", "manager in a missing folder")
    call ok(nnh5_checkpoint_manager_open(mgr, dir // "/ckpt", keep_last=2), "manager open")
    call expect_error(nnh5_checkpoint_manager_latest(ck, mgr), NNH5_ERR_NOT_FOUND, "", &
                      "no checkpoint yet")
    do step = 1, 3
      do j = 1, 3
        do i = 1, 4
          u(i, j) = real(step, real64) * 100 + i * 10 + j
        end do
      end do
      call ok(nnh5_checkpoint_new(ck, step), "checkpoint new")
      call ok(nnh5_checkpoint_set(ck, "u", u), "set u")
      call ok(nnh5_checkpoint_set(ck, "steps_done", step), "set a scalar")
      call ok(nnh5_checkpoint_set(ck, "counts", [step, 2 * step]), "set counts")
      call ok(nnh5_checkpoint_set(ck, "converged", step == 3), "set a logical")
      call ok(nnh5_checkpoint_set_metric(ck, "residual", 1.0_real64 / real(step, real64)), "metric")
      call ok(nnh5_checkpoint_manager_save(mgr, ck), "manager save")
      call nnh5_checkpoint_free(ck)
    end do
    call ok(nnh5_checkpoint_manager_close(mgr), "manager close")
    ! a new run resumes from the newest
    call ok(nnh5_checkpoint_manager_open(mgr, dir // "/ckpt", keep_last=2, async=.true.), &
            "manager reopen")
    call ok(nnh5_checkpoint_manager_latest(ck, mgr), "latest")
    call expect(nnh5_checkpoint_step(ck) == 3, "latest step 3")
    call ok(nnh5_checkpoint_get(ck, "u", back), "get u")
    call expect(all(shape(back) == [4, 3]), "u shape")
    if (all(shape(back) == [4, 3])) &
      call expect(all(transfer(back, [0_int64]) == transfer(u, [0_int64])), "u values")
    call ok(nnh5_checkpoint_get(ck, "steps_done", n), "get a scalar")
    call expect(n == 3, "scalar value")
    call ok(nnh5_checkpoint_get(ck, "counts", counts), "get counts")
    call expect(size(counts) == 2, "counts size")
    if (size(counts) == 2) call expect(all(counts == [3_int64, 6_int64]), "counts values")
    call ok(nnh5_checkpoint_get(ck, "converged", flag), "get a logical")
    call expect(flag, "logical value")
    call ok(nnh5_checkpoint_metric(ck, "residual", metric), "get metric")
    call expect(transfer(metric, 0_int64) == transfer(1.0_real64 / 3, 0_int64), "metric value")
    call nnh5_checkpoint_free(ck)
    ! the fields as h5py sees them: u(i, j) is u[j-1, i-1] (roundtrip.py checks the file)
    call ok(nnh5_checkpoint_new(ck, 4_int64), "checkpoint new 4")
    call ok(nnh5_checkpoint_set(ck, "u", u), "set u 4")
    call ok(nnh5_checkpoint_manager_save(mgr, ck), "async save")
    call nnh5_checkpoint_free(ck)
    call ok(nnh5_checkpoint_manager_wait(mgr), "wait")
    call ok(nnh5_checkpoint_manager_close(mgr), "close")
    call ok(nnh5_checkpoint_manager_close(mgr), "close a null manager")
  end subroutine
end program
