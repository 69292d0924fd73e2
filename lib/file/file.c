/*
 * lib/file/file.c - open and close nnh5 files; object names and kinds.
 *
 * The other parts of an open file live beside it: file_attr.c (attributes),
 * file_write.c (writing tensors and containers) and file_read.c (reading
 * them back, and the checks a reader makes on what a file contains).
 *
 * Every public entry point silences HDF5's error printing for its duration
 * (restoring the caller's setting) and turns HDF5 failures into an nnh5
 * status with a message naming the file, the object and the problem.
 */
#define _DEFAULT_SOURCE /* syscall() */
#include "store/atomic.h"
#include "file/file_internal.h"
#include "store/filters.h"
#include "store/h5util.h"
#include "store/regular.h"
#include "nnh5/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *nnh5_kind_name(int kind)
{
	switch (kind) {
	case NNH5_KIND_TENSOR: return "tensor";
	case NNH5_KIND_LIST: return "list";
	case NNH5_KIND_DICT: return "dict";
	case NNH5_KIND_STATE_DICT: return "state_dict";
	case NNH5_KIND_GROUP: return "group";
	case NNH5_KIND_MODEL: return "model";
	case NNH5_KIND_CHECKPOINT: return "checkpoint";
	default: return "unknown";
	}
}

int nnh5__kind_from_name(const char *s)
{
	for (int k = NNH5_KIND_TENSOR; k <= NNH5_KIND_CHECKPOINT; k++)
		if (strcmp(s, nnh5_kind_name(k)) == 0)
			return k;
	return -1;
}

hid_t nnh5__file_hid(nnh5_file *f)
{
	return f->fid;
}

bool nnh5__file_writable(const nnh5_file *f)
{
	return f->mode == NNH5_CREATE;
}

const char *nnh5_file_path(const nnh5_file *f)
{
	return f->path;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

bool nnh5__file_is_root(const char *name)
{
	return name[0] == '\0' || strcmp(name, "/") == 0;
}

/*
 * Object paths: optional leading '/', components separated by single '/',
 * none empty, "." or "..".
 */
/* Every component of name: not empty, '.' or '..'; with write, obeying the name rule too. */
static int check_components(const nnh5_file *f, const char *name, bool write)
{
	const char *p = name;

	if (!name)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object name is NULL", f->path);
	if (nnh5__file_is_root(name))
		return NNH5_OK;
	if (*p == '/')
		p++;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': object name '%s' has an empty, '.' or '..' component",
					   f->path, name);
		if (write) {
			int rc = nnh5__file_check_new_name(f, "object name", p, len);
			if (rc)
				return rc;
		}
		if (!end)
			return NNH5_OK;
		p = end + 1;
	}
}

int nnh5__file_check_path(const nnh5_file *f, const char *name)
{
	return check_components(f, name, false);
}

int nnh5__file_check_new_name(const nnh5_file *f, const char *what, const char *name,
			      size_t len)
{
	char buf[NNH5__DEFAULT_MAX_NAME + 2], esc[256];
	int status;
	const char *why;

	/* A name longer than the limit is refused for its length alone. */
	if (len > NNH5__DEFAULT_MAX_NAME)
		len = NNH5__DEFAULT_MAX_NAME + 1;
	memcpy(buf, name, len);
	buf[len] = '\0';
	why = nnh5__name_problem(&status, buf, NNH5__DEFAULT_MAX_NAME);
	if (!why)
		return NNH5_OK;
	return nnh5__error(NNH5_ERR_INVALID,
			   "'%s': %s '%s' is %s (%d bytes): refused, as loading would refuse it",
			   f->path, what, nnh5__escape(esc, sizeof esc, buf), why,
			   NNH5__DEFAULT_MAX_NAME);
}

int nnh5__file_check_write_path(const nnh5_file *f, const char *name)
{
	return check_components(f, name, true);
}

int nnh5__file_check_writable(const nnh5_file *f, const char *what)
{
	if (f->mode != NNH5_CREATE || f->fid < 0)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': cannot %s: file is open for reading",
				   f->path, what);
	return NNH5_OK;
}

/*
 * Remember a failure that may have left partial data in a file being
 * written. Refusals before anything is written (bad names, existing
 * objects) leave the file as it was and do not count.
 */
int nnh5__file_note_write(nnh5_file *f, int rc)
{
	if (rc != NNH5_OK && rc != NNH5_ERR_INVALID && rc != NNH5_ERR_EXISTS &&
	    rc != NNH5_ERR_NOT_FOUND && f->mode == NNH5_CREATE)
		f->failed = true;
	return rc;
}

bool nnh5_file_has(nnh5_file *f, const char *name)
{
	ENTER;
	bool has = nnh5__file_check_path(f, name) == NNH5_OK && nnh5__file_check_exists(f, name) == NNH5_OK;
	nnh5_error_clear();
	LEAVE(has);
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

static void release(nnh5_file *f)
{
	if (f->scalar_space > 0)
		H5Sclose(f->scalar_space);
	if (f->lcpl > 0)
		H5Pclose(f->lcpl);
	if (f->gcpl > 0)
		H5Pclose(f->gcpl);
	if (f->dcpl_contig > 0)
		H5Pclose(f->dcpl_contig);
	for (int i = 0; i < NNH5_DTYPE_COUNT; i++)
		if (f->ftype[i] > 0)
			H5Tclose(f->ftype[i]);
	if (f->lapl > 0)
		H5Pclose(f->lapl);
	nnh5__policy_free(&f->policy);
	nnh5__free(f->path);
	nnh5__free(f);
}

static int create_plists(nnh5_file *f)
{
	unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;

	f->lcpl = H5Pcreate(H5P_LINK_CREATE);
	f->gcpl = H5Pcreate(H5P_GROUP_CREATE);
	f->dcpl_contig = H5Pcreate(H5P_DATASET_CREATE);
	f->scalar_space = H5Screate(H5S_SCALAR);
	if (f->lcpl < 0 || f->gcpl < 0 || f->dcpl_contig < 0 || f->scalar_space < 0 ||
	    /*
	     * Names are UTF-8 (ASCII is a subset): say so, as h5py does, or
	     * readers that honour the character set show non-ASCII names garbled.
	     */
	    H5Pset_char_encoding(f->lcpl, H5T_CSET_UTF8) < 0 ||
	    H5Pset_link_creation_order(f->gcpl, order) < 0 ||
	    /*
	     * Attributes keep HDF5's default storage: compact in the object
	     * header, moved to dense storage by HDF5 itself when there are many
	     * or one is too large for a header message (a list of 20,000 keys).
	     * Forcing dense storage made pure readers (jsfive) fail on every file.
	     */
	    H5Pset_attr_creation_order(f->gcpl, order) < 0 ||
	    /* No modification times: the same content gives the same bytes. */
	    H5Pset_obj_track_times(f->gcpl, false) < 0 ||
	    H5Pset_obj_track_times(f->dcpl_contig, false) < 0 ||
	    /*
	     * Keep the links of groups of up to LINKS_COMPACT members in the
	     * group's object header (HDF5's default is 8) instead of a fractal
	     * heap and two B-trees: a module of a state dict rarely has more,
	     * and inserting and finding links is then cheaper.
	     */
	    H5Pset_link_phase_change(f->gcpl, LINKS_COMPACT, LINKS_COMPACT - 2) < 0 ||
	    /*
	     * Every dataset is contiguous, small ones too: the compact layout
	     * (data inside the object header) cost more instructions per tensor
	     * on save and load, never made files smaller, and pure readers such
	     * as jsfive cannot read it (doc/FORMAT.md, "Other readers").
	     */
	    H5Pset_layout(f->dcpl_contig, H5D_CONTIGUOUS) < 0 ||
	    H5Pset_fill_time(f->dcpl_contig, H5D_FILL_TIME_NEVER) < 0 ||
	    /*
	     * Allocate contiguous storage when the dataset is created (nothing is
	     * written: no fill), so its offset is known and its data can be
	     * written straight from the tensor (lib/store/rawio.c).
	     */
	    H5Pset_alloc_time(f->dcpl_contig, H5D_ALLOC_TIME_EARLY) < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create property lists", f->path);
	return NNH5_OK;
}

/* HDF5's own file descriptor, for pread/pwrite of contiguous data; -1 if none. */
static int raw_descriptor(hid_t fid)
{
	hid_t fapl = H5Fget_access_plist(fid);
	void *handle = NULL;
	int fd = -1;

	if (fapl >= 0) {
		if (H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(fid, fapl, &handle) >= 0 &&
		    handle)
			fd = *(int *)handle;
		H5Pclose(fapl);
	}
	H5Eclear2(H5E_DEFAULT);
	return fd;
}

int nnh5__file_size(uint64_t *out, nnh5_file *f)
{
	struct stat st;

	if (f->raw_fd >= 0) {
		if (fstat(f->raw_fd, &st) < 0)
			return nnh5__error(NNH5_ERR_IO, "'%s': cannot query the file size: %s",
					   f->path, strerror(errno));
		*out = (uint64_t)st.st_size;
		return NNH5_OK;
	}
	hsize_t size;
	if (H5Fget_filesize(f->fid, &size) < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot query the file size", f->path);
	*out = size;
	return NNH5_OK;
}

/*
 * Cap HDF5's metadata cache at 2 MiB for reading (its default lets it grow
 * to 32 MiB). nnh5 visits each object header once per save or load, so a
 * bigger cache buys no hits; a compact dataset's header holds its data (and
 * decoded, a second copy), so on a load of 10,000 small tensors the default
 * cache made the peak memory twice as large and the load no faster.
 *
 * Writing gets 256 KiB: the cache counts the bytes of the headers as stored
 * (a dataset's is a few hundred), but holds each with its decoded messages,
 * several KiB more. With 2 MiB, a save of 12,000 small tensors kept some
 * 8,000 headers, 37 MiB above the resident size it started from; with
 * 256 KiB it takes 12 MiB and about 3% fewer instructions (fewer entries to
 * index), and each header, finished when its dataset is closed, is still
 * written once.
 */
static int set_cache(hid_t fapl, size_t max_size)
{
	H5AC_cache_config_t c;

	c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
	if (H5Pget_mdc_config(fapl, &c) < 0)
		return -1;
	c.set_initial_size = true;
	c.max_size = max_size;
	if (c.initial_size > c.max_size)
		c.initial_size = c.max_size;
	if (c.min_size > c.initial_size)
		c.min_size = c.initial_size;
	return H5Pset_mdc_config(fapl, &c) < 0 ? -1 : 0;
}

/*
 * The root attributes every file starts with. Written with store/h5util
 * directly (the root needs no name checks): the attribute module calls this
 * one, never the reverse.
 */
static int put_header(nnh5_file *f)
{
	const char *writer = "nnh5 " NNH5_VERSION_STRING;
	hid_t str = nnh5__h5_vlen_utf8();
	int st = -1;

	if (str >= 0 &&
	    nnh5__h5_attr_write(f->fid, "nnh5_format_version", H5T_STD_I64LE,
				&(int64_t){ FORMAT_VERSION }, 0, false) == 0)
		st = nnh5__h5_attr_write(f->fid, "nnh5_writer", str, &writer, 0, false);
	if (str >= 0)
		H5Tclose(str);
	if (st < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '/': cannot write the nnh5 attributes",
				      f->path);
	return NNH5_OK;
}

hid_t nnh5__file_fcpl(void)
{
	unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
	hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);

	if (fcpl >= 0 && (H5Pset_link_creation_order(fcpl, order) < 0 ||
			  H5Pset_attr_creation_order(fcpl, order) < 0 ||
			  H5Pset_obj_track_times(fcpl, false) < 0)) {
		H5Pclose(fcpl);
		return -1;
	}
	return fcpl;
}

int nnh5__file_fapl_setup(hid_t fapl, nnh5_mode mode)
{
	if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
	    set_cache(fapl, mode == NNH5_CREATE ? WRITE_METADATA_CACHE : METADATA_CACHE) < 0)
		return -1;
	if (mode == NNH5_CREATE && (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
				    H5Pset_alignment(fapl, ALIGNMENT, ALIGNMENT) < 0))
		return -1;
	return 0;
}

static int open_create(nnh5_file *f, bool durable)
{
	hid_t fcpl = -1, fapl = -1;
	int rc;

	rc = nnh5__atomic_begin(&f->atomic, f->path, durable);
	if (rc)
		return rc;
	rc = create_plists(f);
	if (rc)
		goto fail;
	fcpl = nnh5__file_fcpl();
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fcpl < 0 || fapl < 0 || nnh5__file_fapl_setup(fapl, NNH5_CREATE) < 0) {
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "save '%s': cannot set up file properties",
				    f->path);
		goto fail;
	}
	/*
	 * HDF5 creates the temporary file itself, exclusively, in place of the
	 * empty placeholder that reserved its name: opening the placeholder with
	 * O_TRUNC would make ext4 (auto_da_alloc) start writing the whole file
	 * back to disk when it is closed, which on a 512 MiB save costs more
	 * than writing the file (and a non-durable save does not want it).
	 * A prepared placeholder (the replaced file's owner and a mode narrower
	 * than a new file's) is truncated instead: a file created anew would be
	 * readable by more people until its mode is set.
	 */
	if (!f->atomic.prepared && unlink(f->atomic.tmp) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': cannot replace the temporary file '%s': %s",
				 f->path, f->atomic.tmp, strerror(errno));
		goto fail;
	}
	f->fid = H5Fcreate(f->atomic.tmp, f->atomic.prepared ? H5F_ACC_TRUNC : H5F_ACC_EXCL, fcpl,
			   fapl);
	if (f->fid < 0) {
		rc = nnh5__h5_error(NNH5_ERR_IO, "save '%s': cannot create temporary file '%s'",
				    f->path, f->atomic.tmp);
		goto fail;
	}
	f->raw_fd = raw_descriptor(f->fid);
	/* Before any data is written: the replaced file's mode and owner. */
	rc = f->raw_fd >= 0 ? nnh5__atomic_adopt(&f->atomic, f->raw_fd)
			    : nnh5__error(NNH5_ERR_HDF5, "save '%s': no descriptor for '%s'",
					  f->path, f->atomic.tmp);
	if (rc)
		goto fail;
	rc = put_header(f);
	if (rc)
		goto fail;
	H5Pclose(fcpl);
	H5Pclose(fapl);
	return NNH5_OK;
fail:
	if (f->fid >= 0)
		H5Fclose(f->fid);
	f->fid = -1;
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (fapl >= 0)
		H5Pclose(fapl);
	nnh5__atomic_abort(&f->atomic);
	return rc;
}

/* The checks every file opened for reading gets once HDF5 has opened it. */
static int after_open(nnh5_file *f)
{
	int64_t version;
	int rc = nnh5__policy_attach(&f->policy, f->fid, f->path);

	if (rc)
		return rc;
	f->raw_fd = raw_descriptor(f->fid); /* -1 for an in-memory image */
	if (H5Aexists(f->fid, "nnh5_format_version") > 0) {
		int st = nnh5__h5_attr_read_int64(&version, f->fid, "nnh5_format_version");
		if (st < 0)
			return nnh5__h5_error(NNH5_ERR_FORMAT,
					      "'%s': object '/': cannot read attribute "
					      "'nnh5_format_version'",
					      f->path);
		if (st > 0)
			return nnh5__error(NNH5_ERR_TYPE,
					   "'%s': object '/': attribute 'nnh5_format_version' is not "
					   "an integer",
					   f->path);
		if (version > FORMAT_VERSION || version < 1)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "open '%s': nnh5 format version %lld is not supported "
					   "(this library reads version %d)",
					   f->path, (long long)version, FORMAT_VERSION);
	}
	H5Eclear2(H5E_DEFAULT);
	return NNH5_OK;
}

/*
 * Does the file fd hold HDF5's signature where HDF5 looks for it (offset 0,
 * then 512, 1024, 2048, ...)? H5Fis_hdf5() would ask the same by opening the
 * path once more, which may no longer be the file judged.
 */
static bool has_signature(int fd)
{
	static const char sig[8] = { '\211', 'H', 'D', 'F', '\r', '\n', '\032', '\n' };
	struct stat st;
	char buf[8];

	if (fstat(fd, &st) < 0)
		return false;
	for (uint64_t at = 0; at + sizeof buf <= (uint64_t)st.st_size; at = at ? 2 * at : 512)
		if (pread(fd, buf, sizeof buf, (off_t)at) == (ssize_t)sizeof buf &&
		    memcmp(buf, sig, sizeof sig) == 0)
			return true;
	return false;
}

static int open_read(nnh5_file *f)
{
	nnh5__regular reg;
	hid_t fapl;
	int rc = nnh5__regular_open(&reg, f->path, "open");

	if (rc)
		return rc;
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0 || nnh5__file_fapl_setup(fapl, NNH5_READ) < 0) {
		if (fapl >= 0)
			H5Pclose(fapl);
		nnh5__regular_close(&reg);
		return nnh5__h5_error(NNH5_ERR_HDF5, "open '%s': file properties", f->path);
	}
	/*
	 * A load visits each object header once: evicted when closed, 12,000
	 * small tensors take 2.3 times less memory than with them cached, in
	 * fewer instructions. HDF5 refuses the setting for a file this process
	 * has open already without it (h5py, say): then it opens as before.
	 * Parallel HDF5 has no such setting (libnnh5_mpi): opened as before.
	 */
	bool evict = H5Pset_evict_on_close(fapl, true) >= 0;
	f->fid = H5Fopen(f->path, H5F_ACC_RDONLY, fapl);
	if (f->fid < 0 && evict && H5Pset_evict_on_close(fapl, false) >= 0)
		f->fid = H5Fopen(f->path, H5F_ACC_RDONLY, fapl);
	/* Asked before H5Pclose, which clears HDF5's error stack. */
	bool newer = f->fid < 0 && nnh5__h5_newer_format();
	if (newer) /* not damaged: the message says why */
		nnh5__h5_error(NNH5_ERR_FORMAT, "open '%s'", f->path);
	H5Pclose(fapl);
	if (newer)
		return NNH5_ERR_FORMAT;
	if (f->fid < 0) {
		bool is = has_signature(reg.fd);
		nnh5__regular_close(&reg);
		return nnh5__h5_error(NNH5_ERR_FORMAT, "open '%s': %s", f->path,
				      is ? "damaged HDF5 file" : "not an HDF5 file (or damaged)");
	}
	rc = after_open(f);
	/* HDF5 opened the path again by name: it must be the file judged above. */
	if (!rc)
		rc = nnh5__regular_same(&reg, f->raw_fd, f->path, "open");
	nnh5__regular_close(&reg);
	return rc;
}

/*
 * HDF5's core driver identifies open files by name and tries open(2) on the
 * name first (failing if it exists): give every image a distinct name that
 * cannot exist on disk.
 */
static int open_image(nnh5_file *f, const void *data, size_t size)
{
	static atomic_ulong counter;
	char name[96];
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);

	snprintf(name, sizeof name, "/dev/null/nnh5-image-%ld-%lu", (long)getpid(),
		 (unsigned long)atomic_fetch_add(&counter, 1));
	if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
	    H5Pset_fapl_core(fapl, 1 << 16, false) < 0 ||
	    H5Pset_file_image(fapl, (void *)(uintptr_t)data, size) < 0) {
		if (fapl >= 0)
			H5Pclose(fapl);
		return nnh5__h5_error(NNH5_ERR_HDF5, "open '%s': file image properties", f->path);
	}
	f->fid = H5Fopen(name, H5F_ACC_RDONLY, fapl);
	int rc = f->fid >= 0 ? NNH5_OK
		 : nnh5__h5_error(NNH5_ERR_FORMAT, "open '%s'%s", f->path,
				  nnh5__h5_newer_format() ? ""
							  : ": not an HDF5 file image (or damaged)");
	H5Pclose(fapl);
	return rc ? rc : after_open(f);
}

static int new_file(nnh5_file **out, const char *path, nnh5_mode mode,
		    const nnh5_open_options *opts)
{
	nnh5_file *f;
	int rc;

	*out = NULL;
	if (opts->version != NNH5_OPEN_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': unknown options version %u",
				   path ? path : "(null)", opts->version);
	if (!path || !*path)
		return nnh5__error(NNH5_ERR_INVALID, "open: empty path");
	if (mode != NNH5_READ && mode != NNH5_CREATE)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': invalid mode %d", path, (int)mode);
	f = nnh5__calloc(1, sizeof *f);
	if (!f)
		return nnh5__nomem();
	f->fid = -1;
	f->raw_fd = -1;
	f->mode = mode;
	f->verify_checksums = opts->verify_checksums;
	f->require_checksums = opts->require_checksums;
	f->compression = opts->compression;
	if (opts->compression < NNH5_COMPRESSION_NONE || opts->compression > NNH5_COMPRESSION_ARCHIVE) {
		nnh5__free(f);
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': unknown compression profile %d",
				   path, opts->compression);
	}
	rc = nnh5__policy_init(&f->policy, opts, path);
	if (rc) {
		nnh5__free(f);
		return rc;
	}
	f->path = nnh5__strdup(path);
	if (!f->path) {
		nnh5__free(f);
		return nnh5__nomem();
	}
	*out = f;
	return NNH5_OK;
}

/* Hand f out, or free it after a failed open. */
static int finish_open(nnh5_file **out, nnh5_file *f, int rc)
{
	if (rc) {
		if (f->fid >= 0)
			H5Fclose(f->fid);
		release(f);
		return rc;
	}
	*out = f;
	return NNH5_OK;
}

int nnh5__file_new(nnh5_file **out, const char *path, nnh5_mode mode,
		   const nnh5_open_options *opts)
{
	nnh5_open_options defaults = NNH5_OPEN_OPTIONS_INIT;
	int rc = new_file(out, path, mode, opts ? opts : &defaults);

	if (!rc && mode == NNH5_CREATE && (rc = create_plists(*out)) != NNH5_OK) {
		release(*out);
		*out = NULL;
	}
	return rc;
}

int nnh5__file_started(nnh5_file *f)
{
	return f->mode == NNH5_CREATE ? put_header(f) : after_open(f);
}

void nnh5__file_release(nnh5_file *f)
{
	release(f);
}

int nnh5_file_open_image(nnh5_file **out, const void *data, size_t size, const char *name,
			 const nnh5_open_options *opts)
{
	nnh5_open_options defaults = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	int rc;

	*out = NULL;
	if (!name || !*name)
		name = "(memory)";
	if (!data && size)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': image is NULL", name);
	if (size == 0)
		return nnh5__error(NNH5_ERR_FORMAT, "open '%s': empty image: not an HDF5 file", name);
	rc = new_file(&f, name, NNH5_READ, opts ? opts : &defaults);
	if (rc)
		return rc;
	ENTER;
	rc = open_image(f, data, size);
	LEAVE(finish_open(out, f, rc));
}

int nnh5_file_open_ext(nnh5_file **out, const char *path, nnh5_mode mode,
		       const nnh5_open_options *opts)
{
	nnh5_open_options defaults = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	int rc;

	*out = NULL;
	rc = new_file(&f, path, mode, opts ? opts : &defaults);
	if (rc)
		return rc;
	ENTER;
	rc = mode == NNH5_CREATE ? open_create(f, opts ? opts->durable : true) : open_read(f);
	LEAVE(finish_open(out, f, rc));
}

int nnh5_file_open(nnh5_file **out, const char *path, nnh5_mode mode)
{
	return nnh5_file_open_ext(out, path, mode, NULL);
}

/*
 * Close an abandoned file being written without touching the disk again.
 * After a failed write HDF5 still holds dirty metadata it would try to flush
 * on close; on a full disk that flush fails too, and HDF5 1.10 then keeps a
 * half-closed file that crashes the process at exit. The temporary file is
 * discarded anyway, so its descriptor is pointed at /dev/null first: the
 * flush succeeds into nowhere and HDF5 releases everything.
 */
static void close_abandoned(nnh5_file *f)
{
	void *handle = NULL;

	if (f->fid < 0)
		return;
	if (f->mode == NNH5_CREATE && H5Fget_vfd_handle(f->fid, H5P_DEFAULT, &handle) >= 0 &&
	    handle) {
		int null_fd = (int)syscall(SYS_memfd_create, "nnh5-abandoned", 1u /* MFD_CLOEXEC */);
		if (null_fd >= 0) {
			(void)dup2(null_fd, *(int *)handle);
			close(null_fd);
		}
	}
	H5Fclose(f->fid);
	H5Eclear2(H5E_DEFAULT);
	f->fid = -1;
}

int nnh5_file_close(nnh5_file *f)
{
	int rc = NNH5_OK;

	if (!f)
		return NNH5_OK;
	ENTER;
	if (f->failed) {
		/* Keep the earlier failure's message: it says what went wrong. */
		char why[1024];
		snprintf(why, sizeof why, "%s", nnh5_error_message());
		close_abandoned(f);
		nnh5__atomic_abort(&f->atomic);
		rc = nnh5__error(NNH5_ERR_IO,
				 "save '%s': not committed because an earlier write failed "
				 "(the previous file is unchanged)%s%s",
				 f->path, why[0] ? ": " : "", why);
		release(f);
		LEAVE(rc);
	}
	/* Writing: flush first, so a failure (full disk) leaves a file that can be abandoned. */
	if (f->fid >= 0 && f->mode == NNH5_CREATE && H5Fflush(f->fid, H5F_SCOPE_LOCAL) < 0) {
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing the file failed", f->path);
		close_abandoned(f);
	}
	if (f->fid >= 0 && H5Fclose(f->fid) < 0)
		rc = nnh5__h5_error(f->mode == NNH5_CREATE ? NNH5_ERR_IO : NNH5_ERR_HDF5,
				    "'%s': closing the file failed", f->path);
	f->fid = -1;
	if (f->mode == NNH5_CREATE) {
		if (rc)
			nnh5__atomic_abort(&f->atomic);
		else
			rc = nnh5__atomic_commit(&f->atomic);
	}
	release(f);
	LEAVE(rc);
}

void nnh5_file_discard(nnh5_file *f)
{
	if (!f)
		return;
	ENTER;
	if (f->mode == NNH5_CREATE)
		close_abandoned(f);
	else if (f->fid >= 0)
		H5Fclose(f->fid);
	H5Eclear2(H5E_DEFAULT);
	if (f->mode == NNH5_CREATE)
		nnh5__atomic_abort(&f->atomic);
	release(f);
	nnh5__h5_quiet_end(&quiet_);
}

void nnh5__file_display_name(char *buf, size_t n, const char *group, const char *rel)
{
	if (nnh5__file_is_root(group))
		snprintf(buf, n, "/%s", rel);
	else
		snprintf(buf, n, "%s/%s", group, rel);
}

const char *nnh5_compression_name(int profile)
{
	switch (profile) {
	case NNH5_COMPRESSION_NONE: return "none";
	case NNH5_COMPRESSION_FAST: return "fast";
	case NNH5_COMPRESSION_ARCHIVE: return "archive";
	default: return "unknown";
	}
}

const char *nnh5_compression_filters(int profile)
{
	if (profile < NNH5_COMPRESSION_NONE || profile > NNH5_COMPRESSION_ARCHIVE)
		return "unknown";
	return nnh5__filters_of(profile);
}
