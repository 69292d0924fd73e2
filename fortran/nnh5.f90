! fortran/nnh5.f90 - the Fortran 2008 module nnh5: the C library through
! ISO_C_BINDING, for simulation codes. doc/FORTRAN.md is its manual.
!
! Every call that can fail is a function returning an integer status:
! NNH5_OK (0) or a negative NNH5_ERR_* code, the C library's own. The
! message of the last failure on the calling thread is nnh5_error_message().
! Names and paths are Fortran strings; trailing blanks are not part of them
! (they are trimmed), so fixed-length character variables work.
!
! Memory order, defined once here: a Fortran array a(n1, n2, ..., nk) is the
! C / PyTorch / h5py tensor of shape (nk, ..., n2, n1), the same bytes. So
! x(features, batch) in Fortran is the (batch, features) input a PyTorch
! model takes, and a field u(nx, ny) saved here reads in h5py as u[ny, nx]
! with u[j, i] == u(i+1, j+1). Saving reverses the dimensions and copies the
! bytes unchanged; loading does the reverse. Nothing is ever transposed.
!
! Types: integer(int8/int16/int32/int64), real(real32/real64) and default
! logical, ranks 0 to 4. logical is stored as the bool dtype (bytes 0 and 1,
! what h5py and PyTorch use), converted element by element: a Fortran
! logical is not a C bool in memory. Tensors of dtypes Fortran lacks
! (unsigned integers, float16, bfloat16) are refused with NNH5_ERR_TYPE, as
! is any dtype or rank other than the array's: nothing is converted.
!
! Handles (nnh5_model, nnh5_model_ctx, nnh5_state_dict, nnh5_checkpoint,
! nnh5_checkpoint_manager) start null and are freed with their _free (or
! _close) call, which accepts a null handle.
!
! Threads: a model is shared by any number of OpenMP threads through one
! nnh5_model_ctx per thread (nnh5_forward(ctx, x, y)); call
! nnh5_set_num_threads(1) before the parallel region (doc/FORTRAN.md,
! "Threads"). Other handles belong to one thread at a time.
!
! The module calls only the C API of nnh5.h, so it works with any build of
! the library that exports it (libnnh5, and libnnh5_mpi: link the one you
! need, doc/FORTRAN.md, "MPI").
module nnh5
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only : int8, int16, int32, int64, real32, real64
  implicit none
  private

  ! Status codes (nnh5/common.h).
  integer, parameter, public :: NNH5_OK = 0
  integer, parameter, public :: NNH5_ERR_INVALID = -1
  integer, parameter, public :: NNH5_ERR_NOMEM = -2
  integer, parameter, public :: NNH5_ERR_IO = -3
  integer, parameter, public :: NNH5_ERR_NOT_FOUND = -4
  integer, parameter, public :: NNH5_ERR_FORMAT = -5
  integer, parameter, public :: NNH5_ERR_TYPE = -6
  integer, parameter, public :: NNH5_ERR_SHAPE = -7
  integer, parameter, public :: NNH5_ERR_OVERFLOW = -8
  integer, parameter, public :: NNH5_ERR_HDF5 = -9
  integer, parameter, public :: NNH5_ERR_EXISTS = -10
  integer, parameter, public :: NNH5_ERR_CHECKSUM = -11
  integer, parameter, public :: NNH5_ERR_UNSAFE = -12
  integer, parameter, public :: NNH5_ERR_BUSY = -13

  ! dtypes (nnh5/dtype.h), as nnh5_model_dtype() returns them.
  integer(c_int), parameter, public :: NNH5_BOOL = 0
  integer(c_int), parameter, public :: NNH5_INT8 = 1
  integer(c_int), parameter, public :: NNH5_INT16 = 2
  integer(c_int), parameter, public :: NNH5_INT32 = 3
  integer(c_int), parameter, public :: NNH5_INT64 = 4
  integer(c_int), parameter, public :: NNH5_FLOAT32 = 11
  integer(c_int), parameter, public :: NNH5_FLOAT64 = 12
  integer(c_int), parameter, public :: NNH5_COMPLEX64 = 15, NNH5_COMPLEX128 = 16

  type, public :: nnh5_model
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: nnh5_model_ctx
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: nnh5_state_dict
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: nnh5_checkpoint
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: nnh5_checkpoint_manager
    type(c_ptr) :: p = c_null_ptr
  end type

  ! nnh5_checkpoint_options of nnh5/checkpoint.h, field for field.
  type, bind(c) :: c_checkpoint_options
    integer(c_int) :: version
    integer(c_int) :: keep_last
    integer(c_int) :: keep_best
    type(c_ptr) :: best_metric
    logical(c_bool) :: best_is_max
    integer(c_int64_t) :: keep_every
    logical(c_bool) :: async
    integer(c_int) :: busy
    logical(c_bool) :: durable
    integer(c_int) :: compression
  end type

  public :: nnh5_error_message, nnh5_error_status, nnh5_error_clear, nnh5_status_name
  public :: nnh5_version, nnh5_set_num_threads, nnh5_get_num_threads
  public :: nnh5_load_model, nnh5_save_model, nnh5_model_free, nnh5_model_dtype
  public :: nnh5_model_format, nnh5_model_load_state_dict
  public :: nnh5_model_ctx_new, nnh5_model_ctx_free, nnh5_forward
  public :: nnh5_save_tensor, nnh5_load_tensor
  public :: nnh5_state_dict_new, nnh5_state_dict_free, nnh5_state_dict_len
  public :: nnh5_state_dict_key, nnh5_state_dict_has, nnh5_state_dict_set, nnh5_state_dict_get
  public :: nnh5_save_state_dict, nnh5_load_state_dict
  public :: nnh5_checkpoint_new, nnh5_checkpoint_free, nnh5_checkpoint_step
  public :: nnh5_checkpoint_set, nnh5_checkpoint_get
  public :: nnh5_checkpoint_set_metric, nnh5_checkpoint_metric
  public :: nnh5_checkpoint_save, nnh5_checkpoint_load
  public :: nnh5_checkpoint_manager_open, nnh5_checkpoint_manager_close
  public :: nnh5_checkpoint_manager_save, nnh5_checkpoint_manager_wait
  public :: nnh5_checkpoint_manager_latest

  include "nnh5_arrays_interfaces.inc"

  ! The C API (include/nnh5/*.h). Enums pass as c_int, size_t as c_size_t.
  interface
    function c_strlen(s) bind(c, name="strlen") result(n)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
      integer(c_size_t) :: n
    end function
    subroutine c_nnh5_free(p) bind(c, name="nnh5_free")
      import :: c_ptr
      type(c_ptr), value :: p
    end subroutine
    function c_nnh5_error_message() bind(c, name="nnh5_error_message") result(s)
      import :: c_ptr
      type(c_ptr) :: s
    end function
    function c_nnh5_error_status() bind(c, name="nnh5_error_status") result(st)
      import :: c_int
      integer(c_int) :: st
    end function
    subroutine c_nnh5_error_clear() bind(c, name="nnh5_error_clear")
    end subroutine
    function c_nnh5_status_name(st) bind(c, name="nnh5_status_name") result(s)
      import :: c_int, c_ptr
      integer(c_int), value :: st
      type(c_ptr) :: s
    end function
    function c_nnh5_version() bind(c, name="nnh5_version") result(s)
      import :: c_ptr
      type(c_ptr) :: s
    end function
    subroutine c_nnh5_nn_set_num_threads(n) bind(c, name="nnh5_nn_set_num_threads")
      import :: c_int
      integer(c_int), value :: n
    end subroutine
    function c_nnh5_nn_get_num_threads() bind(c, name="nnh5_nn_get_num_threads") result(n)
      import :: c_int
      integer(c_int) :: n
    end function

    ! tensors
    function c_nnh5_tensor_new(t, dtype, ndim, shape) bind(c, name="nnh5_tensor_new") result(st)
      import :: c_ptr, c_int, c_size_t, c_int64_t
      type(c_ptr), intent(out) :: t
      integer(c_int), value :: dtype
      integer(c_size_t), value :: ndim
      integer(c_int64_t), intent(in) :: shape(*)
      integer(c_int) :: st
    end function
    function c_nnh5_tensor_view(t, dtype, ndim, shape, data, nbytes) &
        bind(c, name="nnh5_tensor_view") result(st)
      import :: c_ptr, c_int, c_size_t, c_int64_t
      type(c_ptr), intent(out) :: t
      integer(c_int), value :: dtype
      integer(c_size_t), value :: ndim
      integer(c_int64_t), intent(in) :: shape(*)
      type(c_ptr), value :: data
      integer(c_size_t), value :: nbytes
      integer(c_int) :: st
    end function
    function c_nnh5_tensor_view_const(t, dtype, ndim, shape, data, nbytes) &
        bind(c, name="nnh5_tensor_view_const") result(st)
      import :: c_ptr, c_int, c_size_t, c_int64_t
      type(c_ptr), intent(out) :: t
      integer(c_int), value :: dtype
      integer(c_size_t), value :: ndim
      integer(c_int64_t), intent(in) :: shape(*)
      type(c_ptr), value :: data
      integer(c_size_t), value :: nbytes
      integer(c_int) :: st
    end function
    subroutine c_nnh5_tensor_free(t) bind(c, name="nnh5_tensor_free")
      import :: c_ptr
      type(c_ptr), value :: t
    end subroutine
    function c_nnh5_tensor_data(t) bind(c, name="nnh5_tensor_data") result(p)
      import :: c_ptr
      type(c_ptr), value :: t
      type(c_ptr) :: p
    end function
    function c_nnh5_tensor_mutable_data(t) bind(c, name="nnh5_tensor_mutable_data") result(p)
      import :: c_ptr
      type(c_ptr), value :: t
      type(c_ptr) :: p
    end function
    function c_nnh5_tensor_shape(t) bind(c, name="nnh5_tensor_shape") result(p)
      import :: c_ptr
      type(c_ptr), value :: t
      type(c_ptr) :: p
    end function
    function c_nnh5_tensor_expect(t, dtype, ndim, what) bind(c, name="nnh5_tensor_expect") &
        result(st)
      import :: c_ptr, c_int, c_size_t, c_char
      type(c_ptr), value :: t
      integer(c_int), value :: dtype
      integer(c_size_t), value :: ndim
      character(kind=c_char), intent(in) :: what(*)
      integer(c_int) :: st
    end function
    function c_nnh5_save_tensor(path, t) bind(c, name="nnh5_save_tensor") result(st)
      import :: c_ptr, c_int, c_char
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), value :: t
      integer(c_int) :: st
    end function
    function c_nnh5_load_tensor(t, path) bind(c, name="nnh5_load_tensor") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr), intent(out) :: t
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: st
    end function

    ! dicts
    function c_nnh5_dict_new(d) bind(c, name="nnh5_dict_new") result(st)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: d
      integer(c_int) :: st
    end function
    subroutine c_nnh5_dict_free(d) bind(c, name="nnh5_dict_free")
      import :: c_ptr
      type(c_ptr), value :: d
    end subroutine
    function c_nnh5_dict_set(d, key, t) bind(c, name="nnh5_dict_set") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: d
      character(kind=c_char), intent(in) :: key(*)
      type(c_ptr), value :: t
      integer(c_int) :: st
    end function
    function c_nnh5_dict_get(d, key) bind(c, name="nnh5_dict_get") result(t)
      import :: c_ptr, c_char
      type(c_ptr), value :: d
      character(kind=c_char), intent(in) :: key(*)
      type(c_ptr) :: t
    end function
    function c_nnh5_dict_len(d) bind(c, name="nnh5_dict_len") result(n)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: d
      integer(c_size_t) :: n
    end function
    function c_nnh5_dict_key(d, i) bind(c, name="nnh5_dict_key") result(s)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: d
      integer(c_size_t), value :: i
      type(c_ptr) :: s
    end function
    function c_nnh5_save_state_dict(path, d) bind(c, name="nnh5_save_state_dict") result(st)
      import :: c_ptr, c_int, c_char
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), value :: d
      integer(c_int) :: st
    end function
    function c_nnh5_load_state_dict(d, path) bind(c, name="nnh5_load_state_dict") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr), intent(out) :: d
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: st
    end function

    ! models
    function c_nnh5_load_model(m, path) bind(c, name="nnh5_load_model") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr), intent(out) :: m
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: st
    end function
    function c_nnh5_save_model(path, m, probe) bind(c, name="nnh5_save_model") result(st)
      import :: c_ptr, c_int, c_char
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), value :: m, probe
      integer(c_int) :: st
    end function
    subroutine c_nnh5_model_free(m) bind(c, name="nnh5_model_free")
      import :: c_ptr
      type(c_ptr), value :: m
    end subroutine
    function c_nnh5_model_dtype(m) bind(c, name="nnh5_model_dtype") result(dt)
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int) :: dt
    end function
    function c_nnh5_model_format(s, m) bind(c, name="nnh5_model_format") result(st)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: s
      type(c_ptr), value :: m
      integer(c_int) :: st
    end function
    function c_nnh5_model_load_state_dict(r, m, sd, opts) &
        bind(c, name="nnh5_model_load_state_dict") result(st)
      import :: c_ptr, c_int
      type(c_ptr), value :: r, m, sd, opts
      integer(c_int) :: st
    end function
    function c_nnh5_model_ctx_new(c, m) bind(c, name="nnh5_model_ctx_new") result(st)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: c
      type(c_ptr), value :: m
      integer(c_int) :: st
    end function
    subroutine c_nnh5_model_ctx_free(c) bind(c, name="nnh5_model_ctx_free")
      import :: c_ptr
      type(c_ptr), value :: c
    end subroutine
    function c_nnh5_model_forward_into(m, x, y) bind(c, name="nnh5_model_forward_into") &
        result(st)
      import :: c_ptr, c_int
      type(c_ptr), value :: m, x, y
      integer(c_int) :: st
    end function
    function c_nnh5_model_forward_ctx_into(c, x, y) &
        bind(c, name="nnh5_model_forward_ctx_into") result(st)
      import :: c_ptr, c_int
      type(c_ptr), value :: c, x, y
      integer(c_int) :: st
    end function

    ! checkpoints
    function c_nnh5_checkpoint_new(c, step) bind(c, name="nnh5_checkpoint_new") result(st)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), intent(out) :: c
      integer(c_int64_t), value :: step
      integer(c_int) :: st
    end function
    subroutine c_nnh5_checkpoint_free(c) bind(c, name="nnh5_checkpoint_free")
      import :: c_ptr
      type(c_ptr), value :: c
    end subroutine
    function c_nnh5_checkpoint_step(c) bind(c, name="nnh5_checkpoint_step") result(step)
      import :: c_ptr, c_int64_t
      type(c_ptr), value :: c
      integer(c_int64_t) :: step
    end function
    function c_nnh5_checkpoint_set_tensor(c, name, t) bind(c, name="nnh5_checkpoint_set_tensor") &
        result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: c
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), value :: t
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_tensor(c, name) bind(c, name="nnh5_checkpoint_tensor") result(t)
      import :: c_ptr, c_char
      type(c_ptr), value :: c
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr) :: t
    end function
    function c_nnh5_checkpoint_set_metric(c, name, v) bind(c, name="nnh5_checkpoint_set_metric") &
        result(st)
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: c
      character(kind=c_char), intent(in) :: name(*)
      real(c_double), value :: v
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_metric(v, c, name) bind(c, name="nnh5_checkpoint_metric") &
        result(st)
      import :: c_ptr, c_int, c_char, c_double
      real(c_double), intent(out) :: v
      type(c_ptr), value :: c
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_save(path, c) bind(c, name="nnh5_checkpoint_save") result(st)
      import :: c_ptr, c_int, c_char
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), value :: c
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_load(c, path) bind(c, name="nnh5_checkpoint_load") result(st)
      import :: c_ptr, c_int, c_char
      type(c_ptr), intent(out) :: c
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_manager_open(m, dir, opts) &
        bind(c, name="nnh5_checkpoint_manager_open") result(st)
      import :: c_ptr, c_int, c_char, c_checkpoint_options
      type(c_ptr), intent(out) :: m
      character(kind=c_char), intent(in) :: dir(*)
      type(c_checkpoint_options), intent(in) :: opts
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_manager_close(m) bind(c, name="nnh5_checkpoint_manager_close") &
        result(st)
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_manager_save(m, c) bind(c, name="nnh5_checkpoint_manager_save") &
        result(st)
      import :: c_ptr, c_int
      type(c_ptr), value :: m, c
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_manager_wait(m) bind(c, name="nnh5_checkpoint_manager_wait") &
        result(st)
      import :: c_ptr, c_int
      type(c_ptr), value :: m
      integer(c_int) :: st
    end function
    function c_nnh5_checkpoint_manager_latest(c, report, m) &
        bind(c, name="nnh5_checkpoint_manager_latest") result(st)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: c
      type(c_ptr), value :: report
      type(c_ptr), value :: m
      integer(c_int) :: st
    end function
  end interface

contains

  ! A Fortran string as a C string: trailing blanks trimmed, NUL appended.
  pure function cstr(s) result(r)
    character(len=*), intent(in) :: s
    character(kind=c_char, len=len_trim(s) + 1) :: r
    r = trim(s) // c_null_char
  end function

  ! A C string (borrowed) as a new Fortran string; "" for NULL.
  function fstr(p) result(r)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: r
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    if (.not. c_associated(p)) then
      r = ""
      return
    end if
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(len=n) :: r)
    do i = 1, n
      r(i:i) = chars(i)
    end do
  end function

  ! ---------------------------------------------------------------- errors

  ! The message of the last failure on the calling thread ("" if none).
  function nnh5_error_message() result(msg)
    character(len=:), allocatable :: msg
    msg = fstr(c_nnh5_error_message())
  end function

  ! The status of the last failure on the calling thread (NNH5_OK if none).
  integer function nnh5_error_status()
    nnh5_error_status = int(c_nnh5_error_status())
  end function

  ! Forget the calling thread's last failure.
  subroutine nnh5_error_clear()
    call c_nnh5_error_clear()
  end subroutine

  ! The name of a status code, e.g. "NNH5_ERR_NOT_FOUND".
  function nnh5_status_name(st) result(name)
    integer, intent(in) :: st
    character(len=:), allocatable :: name
    name = fstr(c_nnh5_status_name(int(st, c_int)))
  end function

  ! The library version, "MAJOR.MINOR.PATCH".
  function nnh5_version() result(v)
    character(len=:), allocatable :: v
    v = fstr(c_nnh5_version())
  end function

  ! OpenBLAS threads of every forward pass (process-wide): 1 before an
  ! OpenMP region that calls models (doc/FORTRAN.md, "Threads").
  subroutine nnh5_set_num_threads(n)
    integer, intent(in) :: n
    call c_nnh5_nn_set_num_threads(int(n, c_int))
  end subroutine

  integer function nnh5_get_num_threads()
    nnh5_get_num_threads = int(c_nnh5_nn_get_num_threads())
  end function

  ! ---------------------------------------------------------------- models

  ! Load the model saved at path (by nnh5 in C, Fortran or Python) into
  ! model, which must be null or freed. Errors: those of nnh5_load_model().
  integer function nnh5_load_model(model, path) result(st)
    type(nnh5_model), intent(inout) :: model
    character(len=*), intent(in) :: path
    st = c_nnh5_load_model(model%p, cstr(path))
  end function

  ! Save model to path (atomically), without a probe.
  integer function nnh5_save_model(path, model) result(st)
    character(len=*), intent(in) :: path
    type(nnh5_model), intent(in) :: model
    st = c_nnh5_save_model(cstr(path), model%p, c_null_ptr)
  end function

  ! Free a model (null is a no-op); free its contexts first.
  subroutine nnh5_model_free(model)
    type(nnh5_model), intent(inout) :: model
    call c_nnh5_model_free(model%p)
    model%p = c_null_ptr
  end subroutine

  ! NNH5_FLOAT32 or NNH5_FLOAT64: the kind of real its forward pass takes.
  integer function nnh5_model_dtype(model)
    type(nnh5_model), intent(in) :: model
    nnh5_model_dtype = int(c_nnh5_model_dtype(model%p))
  end function

  ! The model as PyTorch prints it; "" when out of memory.
  function nnh5_model_format(model) result(text)
    type(nnh5_model), intent(in) :: model
    character(len=:), allocatable :: text
    type(c_ptr) :: s
    if (c_nnh5_model_format(s, model%p) /= NNH5_OK) then
      text = ""
      return
    end if
    text = fstr(s)
    call c_nnh5_free(s)
  end function

  ! Copy the parameters in sd into model, strictly (every key, every shape).
  integer function nnh5_model_load_state_dict(model, sd) result(st)
    type(nnh5_model), intent(inout) :: model
    type(nnh5_state_dict), intent(in) :: sd
    st = c_nnh5_model_load_state_dict(c_null_ptr, model%p, sd%p, c_null_ptr)
  end function

  ! A context for one thread over model, which it shares read-only.
  integer function nnh5_model_ctx_new(ctx, model) result(st)
    type(nnh5_model_ctx), intent(inout) :: ctx
    type(nnh5_model), intent(in) :: model
    st = c_nnh5_model_ctx_new(ctx%p, model%p)
  end function

  ! Free a context (null is a no-op).
  subroutine nnh5_model_ctx_free(ctx)
    type(nnh5_model_ctx), intent(inout) :: ctx
    call c_nnh5_model_ctx_free(ctx%p)
    ctx%p = c_null_ptr
  end subroutine

  ! Views of the forward pass's x and y, shapes reversed (memory order above).
  ! Only their addresses are taken; a zero-sized array's is not dereferenced.
  function views(tx, ty, dtype, rank, xs, ys, px, py, esize) result(st)
    type(c_ptr), intent(out) :: tx, ty
    integer(c_int), intent(in) :: dtype
    integer, intent(in) :: rank, esize
    integer(int64), intent(in) :: xs(:), ys(:)
    type(c_ptr), intent(in) :: px, py
    integer :: st
    integer(int64) :: cx(rank), cy(rank)
    cx = xs(rank:1:-1)
    cy = ys(rank:1:-1)
    ty = c_null_ptr
    st = c_nnh5_tensor_view_const(tx, dtype, int(rank, c_size_t), cx, px, &
                                  int(product(xs) * esize, c_size_t))
    if (st /= NNH5_OK) return
    st = c_nnh5_tensor_view(ty, dtype, int(rank, c_size_t), cy, py, &
                            int(product(ys) * esize, c_size_t))
    if (st /= NNH5_OK) then
      call c_nnh5_tensor_free(tx)
      tx = c_null_ptr
    end if
  end function

  ! ---------------------------------------------------------------- state dicts

  ! A new empty state dict (keys in insertion order).
  integer function nnh5_state_dict_new(sd) result(st)
    type(nnh5_state_dict), intent(inout) :: sd
    st = c_nnh5_dict_new(sd%p)
  end function

  subroutine nnh5_state_dict_free(sd)
    type(nnh5_state_dict), intent(inout) :: sd
    call c_nnh5_dict_free(sd%p)
    sd%p = c_null_ptr
  end subroutine

  integer function nnh5_state_dict_len(sd)
    type(nnh5_state_dict), intent(in) :: sd
    nnh5_state_dict_len = int(c_nnh5_dict_len(sd%p))
  end function

  ! Key i (1-based, in order); "" past the end.
  function nnh5_state_dict_key(sd, i) result(key)
    type(nnh5_state_dict), intent(in) :: sd
    integer, intent(in) :: i
    character(len=:), allocatable :: key
    key = ""
    if (i >= 1) key = fstr(c_nnh5_dict_key(sd%p, int(i - 1, c_size_t)))
  end function

  logical function nnh5_state_dict_has(sd, key)
    type(nnh5_state_dict), intent(in) :: sd
    character(len=*), intent(in) :: key
    nnh5_state_dict_has = c_associated(c_nnh5_dict_get(sd%p, cstr(key)))
  end function

  ! Save sd as a state dict ("a.b" is the dataset a/b), as PyTorch users save one.
  integer function nnh5_save_state_dict(path, sd) result(st)
    character(len=*), intent(in) :: path
    type(nnh5_state_dict), intent(in) :: sd
    st = c_nnh5_save_state_dict(cstr(path), sd%p)
  end function

  ! Load the state dict at path into sd, which must be null or freed.
  integer function nnh5_load_state_dict(sd, path) result(st)
    type(nnh5_state_dict), intent(inout) :: sd
    character(len=*), intent(in) :: path
    st = c_nnh5_load_state_dict(sd%p, cstr(path))
  end function

  ! ---------------------------------------------------------------- checkpoints

  ! A new empty checkpoint of a simulation at step (>= 0).
  integer function nnh5_checkpoint_new(ck, step) result(st)
    type(nnh5_checkpoint), intent(inout) :: ck
    integer(int64), intent(in) :: step
    st = c_nnh5_checkpoint_new(ck%p, int(step, c_int64_t))
  end function

  subroutine nnh5_checkpoint_free(ck)
    type(nnh5_checkpoint), intent(inout) :: ck
    call c_nnh5_checkpoint_free(ck%p)
    ck%p = c_null_ptr
  end subroutine

  integer(int64) function nnh5_checkpoint_step(ck)
    type(nnh5_checkpoint), intent(in) :: ck
    nnh5_checkpoint_step = int(c_nnh5_checkpoint_step(ck%p), int64)
  end function

  integer function nnh5_checkpoint_set_metric(ck, name, value) result(st)
    type(nnh5_checkpoint), intent(inout) :: ck
    character(len=*), intent(in) :: name
    real(real64), intent(in) :: value
    st = c_nnh5_checkpoint_set_metric(ck%p, cstr(name), real(value, c_double))
  end function

  integer function nnh5_checkpoint_metric(ck, name, value) result(st)
    type(nnh5_checkpoint), intent(in) :: ck
    character(len=*), intent(in) :: name
    real(real64), intent(out) :: value
    real(c_double) :: v
    st = c_nnh5_checkpoint_metric(v, ck%p, cstr(name))
    value = real(v, real64)
  end function

  ! One checkpoint file, saved atomically and durably.
  integer function nnh5_checkpoint_save(path, ck) result(st)
    character(len=*), intent(in) :: path
    type(nnh5_checkpoint), intent(in) :: ck
    st = c_nnh5_checkpoint_save(cstr(path), ck%p)
  end function

  integer function nnh5_checkpoint_load(ck, path) result(st)
    type(nnh5_checkpoint), intent(inout) :: ck
    character(len=*), intent(in) :: path
    st = c_nnh5_checkpoint_load(ck%p, cstr(path))
  end function

  ! Open (creating) the checkpoint folder dir. keep_last: the newest N kept
  ! (default 3; 0 keeps all); keep_every: also every step that is a
  ! multiple of it (default 0: none); async: save in a background thread
  ! (default .false.); durable: fsync files and folder (default .true.).
  integer function nnh5_checkpoint_manager_open(mgr, dir, keep_last, keep_every, async, &
                                                durable) result(st)
    type(nnh5_checkpoint_manager), intent(inout) :: mgr
    character(len=*), intent(in) :: dir
    integer, intent(in), optional :: keep_last
    integer(int64), intent(in), optional :: keep_every
    logical, intent(in), optional :: async, durable
    type(c_checkpoint_options) :: o
    o = c_checkpoint_options(1, 3, 0, c_null_ptr, .false._c_bool, 0_c_int64_t, &
                             .false._c_bool, 0, .true._c_bool, 0)
    if (present(keep_last)) o%keep_last = int(keep_last, c_int)
    if (present(keep_every)) o%keep_every = int(keep_every, c_int64_t)
    if (present(async)) o%async = logical(async, c_bool)
    if (present(durable)) o%durable = logical(durable, c_bool)
    st = c_nnh5_checkpoint_manager_open(mgr%p, cstr(dir), o)
  end function

  ! Wait for a save in flight, release the folder; null is a no-op.
  integer function nnh5_checkpoint_manager_close(mgr) result(st)
    type(nnh5_checkpoint_manager), intent(inout) :: mgr
    st = c_nnh5_checkpoint_manager_close(mgr%p)
    mgr%p = c_null_ptr
  end function

  ! Save ck as the checkpoint of its step, apply retention (async: returns
  ! once ck's tensors are copied).
  integer function nnh5_checkpoint_manager_save(mgr, ck) result(st)
    type(nnh5_checkpoint_manager), intent(inout) :: mgr
    type(nnh5_checkpoint), intent(in) :: ck
    st = c_nnh5_checkpoint_manager_save(mgr%p, ck%p)
  end function

  integer function nnh5_checkpoint_manager_wait(mgr) result(st)
    type(nnh5_checkpoint_manager), intent(inout) :: mgr
    st = c_nnh5_checkpoint_manager_wait(mgr%p)
  end function

  ! The newest checkpoint that loads and verifies into ck (null or freed);
  ! NNH5_ERR_NOT_FOUND when there is none (a fresh start).
  integer function nnh5_checkpoint_manager_latest(ck, mgr) result(st)
    type(nnh5_checkpoint), intent(inout) :: ck
    type(nnh5_checkpoint_manager), intent(inout) :: mgr
    st = c_nnh5_checkpoint_manager_latest(ck%p, c_null_ptr, mgr%p)
  end function

  include "nnh5_arrays_procedures.inc"

end module nnh5
