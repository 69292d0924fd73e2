/*
 * lib/store/policy.c - the load policy (see policy.h): what a reader refuses in a
 * file before it reads any data, and the limits on what a walk visits.
 *
 * The defaults make loading a stranger's file safe: nothing outside the
 * file is opened, no code is loaded, and the memory a load takes is bounded
 * by the file's size (contiguous data must lie inside the file without
 * overlaps; compact data lives in the object headers) times the compression
 * ratio allowed for chunked data, and by the per-tensor and per-load caps.
 */
#include "store/policy.h"
#include "store/filters.h"
#include "store/h5util.h"
#include "nnh5/file.h"

#include <stdio.h>
#include <string.h>

#include <H5PLpublic.h>

int nnh5__policy_init(nnh5__policy *p, const nnh5_open_options *opts, const char *what)
{
	memset(p, 0, sizeof *p);
	p->max_tensor_bytes = NNH5__DEFAULT_MAX_TENSOR_BYTES;
	p->max_load_bytes = NNH5__DEFAULT_MAX_LOAD_BYTES;
	p->max_ratio = NNH5__DEFAULT_MAX_RATIO;
	p->max_groups = NNH5__DEFAULT_MAX_GROUPS;
	p->max_tensors = NNH5__DEFAULT_MAX_TENSORS;
	p->max_depth = NNH5__DEFAULT_MAX_DEPTH;
	p->max_name = NNH5__DEFAULT_MAX_NAME;
	if (!opts)
		return NNH5_OK;
	p->allow_external = opts->allow_external;
	p->allow_filter_plugins = opts->allow_filter_plugins;
	p->copy_aliases = opts->copy_aliases;
	if (opts->max_tensor_bytes)
		p->max_tensor_bytes = opts->max_tensor_bytes;
	if (opts->max_load_bytes)
		p->max_load_bytes = opts->max_load_bytes;
	if (opts->max_compression_ratio)
		p->max_ratio = opts->max_compression_ratio;
	if (opts->max_groups)
		p->max_groups = opts->max_groups;
	if (opts->max_tensors)
		p->max_tensors = opts->max_tensors;
	if (opts->max_depth)
		p->max_depth = opts->max_depth;
	if (opts->max_name_length)
		p->max_name = opts->max_name_length;
	/* Walks recurse once per level: keep the stack bounded. */
	if (p->max_depth > NNH5__MAX_DEPTH_LIMIT)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': max_depth %llu exceeds %d", what,
				   (unsigned long long)p->max_depth, NNH5__MAX_DEPTH_LIMIT);
	return NNH5_OK;
}

int nnh5__policy_attach(nnh5__policy *p, hid_t fid, const char *path)
{
	hsize_t size = 0;
	H5O_info_t info;

	if (H5Fget_filesize(fid, &size) < 0 || H5Oget_info2(fid, &info, H5O_INFO_BASIC) < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "open '%s': cannot get the file's size",
				      path);
	p->file_size = size;
	p->fileno = info.fileno;
	return NNH5_OK;
}

void nnh5__policy_free(nnh5__policy *p)
{
	nnh5__free(p->seen);
	nnh5__free(p->ext);
	p->seen = NULL;
	p->ext = NULL;
	p->n_seen = p->cap_seen = p->n_ext = p->cap_ext = 0;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

const char *nnh5__escape(char *buf, size_t n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (n == 0)
		return buf;
	while (*p && o + 5 < n) {
		char one[5] = { (char)*p, 0, 0, 0, 0 };
		size_t len = 1;
		/* A whole valid UTF-8 sequence passes through as it is. */
		if (*p >= 0x80) {
			len = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
			for (size_t i = 1; i < len; i++)
				if (!p[i])
					len = 0;
			if (len) {
				memcpy(one, p, len);
				one[len] = '\0';
				if (!nnh5__utf8_valid(one))
					len = 0;
			}
		}
		if (len == 0 || *p < 0x20 || *p == 0x7f || *p == '\\') {
			if (*p == '\\') {
				buf[o++] = '\\';
				buf[o++] = '\\';
			} else {
				buf[o++] = '\\';
				buf[o++] = 'x';
				buf[o++] = hex[*p >> 4];
				buf[o++] = hex[*p & 15];
			}
			p++;
			continue;
		}
		if (o + len + 1 >= n)
			break;
		memcpy(buf + o, p, len);
		o += len;
		p += len;
	}
	buf[o] = '\0';
	return buf;
}

const char *nnh5__name_problem(int *status, const char *name, uint64_t max)
{
	bool ctrl = false;

	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			ctrl = true;
	if (strlen(name) > max) {
		*status = NNH5_ERR_OVERFLOW;
		return "longer than the limit of names";
	}
	if (ctrl) {
		*status = NNH5_ERR_FORMAT;
		return "made with control characters";
	}
	if (!nnh5__utf8_valid(name)) {
		*status = NNH5_ERR_FORMAT;
		return "not valid UTF-8";
	}
	*status = NNH5_OK;
	return NULL;
}

int nnh5__policy_check_name(const nnh5__policy *p, const char *path, const char *parent,
			    const char *name)
{
	char esc[256];
	int status;
	const char *why = nnh5__name_problem(&status, name, p->max_name);

	if (status == NNH5_ERR_OVERFLOW)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': group '%s' holds a name of %zu bytes ('%s...'), more than "
				   "the limit of %llu (max_name_length)",
				   path, parent, strlen(name), nnh5__escape(esc, 64, name),
				   (unsigned long long)p->max_name);
	if (why)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': group '%s' holds the name '%s', which is %s: refused", path,
				   parent, nnh5__escape(esc, sizeof esc, name), why);
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Plugins                                                             */

void nnh5__policy_plugins_off(const nnh5__policy *p, nnh5__plugin_guard *g)
{
	g->changed = false;
	g->saved = 0;
	if (p->allow_filter_plugins || H5PLget_loading_state(&g->saved) < 0)
		return;
	if (g->saved != 0 && H5PLset_loading_state(0) >= 0)
		g->changed = true;
}

void nnh5__policy_plugins_restore(const nnh5__plugin_guard *g)
{
	if (g->changed)
		H5PLset_loading_state(g->saved);
}

/* ------------------------------------------------------------------ */
/* Datasets                                                            */

void nnh5__storage_release(nnh5__storage *s)
{
	if (s->type >= 0)
		H5Tclose(s->type);
	s->type = -1;
}

/*
 * Object header message types (HDF5 file format specification, "Header
 * Message Types"): an external file list and a filter pipeline are what a
 * creation property list would report as external storage and filters.
 */
#define MSG_EXTERNAL_FILES 0x0007
#define MSG_FILTER_PIPELINE 0x000B

/*
 * Whether did is contiguous data in this file with neither external storage
 * nor filters, known without its creation property list (whose copy costs
 * about a third of opening and describing a small dataset). H5Dget_offset
 * is defined only for contiguous data, but HDF5 1.10.8 (H5D__get_offset)
 * returns it for external storage too when the layout message holds an
 * address, as a crafted file's can: so the header must also hold neither an
 * external file list nor a filter pipeline message, the messages HDF5 reads
 * into the creation properties (H5D__layout_oh_read).
 */
static bool plain_contiguous(haddr_t *offset, hid_t did)
{
	H5O_info_t info;
	const uint64_t other = (UINT64_C(1) << MSG_EXTERNAL_FILES) | (UINT64_C(1) << MSG_FILTER_PIPELINE);

	*offset = H5Dget_offset(did);
	if (*offset == HADDR_UNDEF)
		return false;
	if (H5Oget_info2(did, &info, H5O_INFO_HDR) < 0 || (info.hdr.mesg.present & other))
		return false;
	return true;
}

/* Layout, external storage, filters and chunks from the creation properties. */
static int describe_dcpl(nnh5__storage *out, hid_t did)
{
	hid_t dcpl = H5Dget_create_plist(did);

	if (dcpl < 0)
		return -1;
	out->layout = H5Pget_layout(dcpl);
	out->n_external = H5Pget_external_count(dcpl);
	out->external = out->n_external > 0;
	out->nfilters = H5Pget_nfilters(dcpl);
	for (int i = 0; i < out->nfilters && out->bad_filter == -2; i++) {
		unsigned flags, cd[8] = { 0 };
		size_t nelm = sizeof cd / sizeof cd[0];
		char fname[64];
		H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelm, cd,
						 sizeof fname, fname, NULL);
		/* The one rule of what nnh5 trusts (lib/store/filters.c). */
		out->bad_filter_why = nnh5__filter_problem(&out->bad_filter_status, id, nelm, cd);
		if (out->bad_filter_why)
			out->bad_filter = id;
	}
	if (out->layout == H5D_CHUNKED)
		out->chunk_ndim = H5Pget_chunk(dcpl, H5S_MAX_RANK, out->chunk);
	H5Pclose(dcpl);
	return 0;
}

int nnh5__policy_describe(nnh5__storage *out, const nnh5__policy *p, const char *path,
			  hid_t did, unsigned long fileno, haddr_t addr, const char *display)
{
	hid_t space;
	haddr_t offset = HADDR_UNDEF;
	bool plain;

	memset(out, 0, sizeof *out);
	out->fileno = fileno;
	out->addr = addr;
	out->offset = HADDR_UNDEF;
	out->in_main_file = fileno == p->fileno;
	out->bad_filter = -2;
	out->ndim = -1;
	out->chunk_ndim = -1;
	out->space = H5S_NO_CLASS;
	out->type = H5Dget_type(did);
	/* Offsets of datasets in other files (allowed external links) mean nothing here. */
	plain = out->type >= 0 && out->in_main_file && plain_contiguous(&offset, did);
	if (plain)
		out->layout = H5D_CONTIGUOUS; /* n_external, nfilters 0 */
	if (out->type < 0 || (!plain && describe_dcpl(out, did) < 0)) {
		nnh5__storage_release(out);
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': dataset '%s': creation properties",
				      path, display);
	}
	out->elsize = H5Tget_size(out->type);
	/* Variable-length data lives in heaps: its size in memory is not its size on disk. */
	out->variable = H5Tis_variable_str(out->type) > 0 ||
			H5Tdetect_class(out->type, H5T_VLEN) > 0 ||
			H5Tdetect_class(out->type, H5T_REFERENCE) > 0;
	space = H5Dget_space(did);
	if (space >= 0) {
		out->space = H5Sget_simple_extent_type(space);
		out->ndim = H5Sget_simple_extent_ndims(space);
		if (out->ndim >= 0 && out->ndim <= H5S_MAX_RANK &&
		    H5Sget_simple_extent_dims(space, out->dims, NULL) < 0)
			out->ndim = -1;
		H5Sclose(space);
	}
	if (out->layout != H5D_VIRTUAL) {
		out->storage_bytes = H5Dget_storage_size(did);
		if (plain)
			out->offset = offset;
		else if (out->layout == H5D_CONTIGUOUS && out->in_main_file && !out->external)
			out->offset = H5Dget_offset(did);
	}
	H5Eclear2(H5E_DEFAULT);
	return NNH5_OK;
}

/* Refuse storage that reads other files or runs filters outside the allowlist. */
static int check_layout(const nnh5__storage *s, const nnh5__policy *p, const char *path,
			const char *display)
{
	if (s->layout == H5D_VIRTUAL && !p->allow_external)
		return nnh5__error(NNH5_ERR_UNSAFE,
				   "'%s': dataset '%s' is a virtual dataset (reads other files): refused",
				   path, display);
	if (s->n_external > 0 && !p->allow_external)
		return nnh5__error(NNH5_ERR_UNSAFE,
				   "'%s': dataset '%s' stores its data in external files: refused",
				   path, display);
	if (s->layout < 0 || s->n_external < 0)
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': dataset '%s': unreadable layout", path,
				   display);
	if (s->nfilters < 0)
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': dataset '%s': unreadable filters", path,
				   display);
	if (s->bad_filter != -2 && !p->allow_filter_plugins)
		return nnh5__error(s->bad_filter_status,
				   "'%s': dataset '%s' uses filter %d: %s: refused", path, display,
				   (int)s->bad_filter, s->bad_filter_why);
	return NNH5_OK;
}

/* Declared elements and bytes, with overflow checks, against the per-tensor cap. */
static int check_logical(nnh5__storage *s, const nnh5__policy *p, const char *path,
			 const char *display)
{
	uint64_t numel = 1, bytes;
	bool over = false;

	if (s->ndim < 0 || s->ndim > H5S_MAX_RANK || s->elsize == 0 || s->space == H5S_NO_CLASS)
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': dataset '%s': unreadable shape or type",
				   path, display);
	if (s->space == H5S_NULL)
		numel = 0;
	for (int i = 0; i < s->ndim && s->space != H5S_NULL; i++)
		if (__builtin_mul_overflow(numel, (uint64_t)s->dims[i], &numel))
			over = true;
	if (over || __builtin_mul_overflow(numel, (uint64_t)s->elsize, &bytes))
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': dataset '%s' declares a size that overflows 64 bits", path,
				   display);
	if (bytes > p->max_tensor_bytes)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': dataset '%s' declares %llu bytes, more than the per-tensor "
				   "limit of %llu (max_tensor_bytes)",
				   path, display, (unsigned long long)bytes,
				   (unsigned long long)p->max_tensor_bytes);
	s->numel = numel;
	s->logical_bytes = bytes;
	return NNH5_OK;
}

/* Chunks: each at most the dataset (or 1 MiB) and the per-tensor cap. */
static int check_chunks(const nnh5__storage *s, const nnh5__policy *p, const char *path,
			const char *display)
{
	uint64_t bytes = s->elsize;
	bool over = s->chunk_ndim < 0 || s->chunk_ndim > H5S_MAX_RANK;

	for (int i = 0; !over && i < s->chunk_ndim; i++)
		over = __builtin_mul_overflow(bytes, (uint64_t)s->chunk[i], &bytes);
	uint64_t allowed = s->logical_bytes > (UINT64_C(1) << 20) ? s->logical_bytes : UINT64_C(1) << 20;
	if (over || bytes > allowed || bytes > p->max_tensor_bytes)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': dataset '%s' declares chunks of %s bytes for %llu bytes of "
				   "data: refused",
				   path, display, over ? "too many" : "so many",
				   (unsigned long long)s->logical_bytes);
	return NNH5_OK;
}

bool nnh5__policy_ratio_ok(uint64_t logical, uint64_t stored, uint64_t max_ratio)
{
	uint64_t allowed;

	if (__builtin_mul_overflow(stored, max_ratio, &allowed) ||
	    __builtin_add_overflow(allowed, NNH5__RATIO_SLACK, &allowed))
		allowed = UINT64_MAX;
	return logical <= allowed;
}

/* Stored bytes against declared ones; contiguous data inside the file. */
static int check_stored(nnh5__storage *s, const nnh5__policy *p, const char *path,
			const char *display)
{
	if (s->logical_bytes == 0 || s->external || s->variable)
		return NNH5_OK;
	/*
	 * Chunked data may be compressed or sparse, and contiguous data never
	 * written reads as fill values: either way HDF5 makes up the bytes not
	 * stored, so they are capped by the ratio.
	 */
	if (s->layout == H5D_CHUNKED || (s->layout == H5D_CONTIGUOUS && s->storage_bytes == 0)) {
		if (!nnh5__policy_ratio_ok(s->logical_bytes, s->storage_bytes, p->max_ratio))
			return nnh5__error(NNH5_ERR_UNSAFE,
					   "'%s': dataset '%s' declares %llu bytes but stores %llu: "
					   "more than %llu:1 (a compression bomb or sparse data; "
					   "max_compression_ratio)",
					   path, display, (unsigned long long)s->logical_bytes,
					   (unsigned long long)s->storage_bytes,
					   (unsigned long long)p->max_ratio);
		s->offset = HADDR_UNDEF;
		return NNH5_OK;
	}
	/* Compact and contiguous data is stored as declared, byte for byte. */
	if (s->storage_bytes != s->logical_bytes)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': dataset '%s' declares %llu bytes but stores %llu (damaged)",
				   path, display, (unsigned long long)s->logical_bytes,
				   (unsigned long long)s->storage_bytes);
	if (s->layout != H5D_CONTIGUOUS || !s->in_main_file)
		return NNH5_OK;
	uint64_t end;
	if (s->offset == HADDR_UNDEF ||
	    __builtin_add_overflow((uint64_t)s->offset, s->storage_bytes, &end) ||
	    end > p->file_size)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': dataset '%s': its %llu bytes of data at offset %llu lie "
				   "outside the file (%llu bytes; truncated or damaged)",
				   path, display, (unsigned long long)s->storage_bytes,
				   (unsigned long long)s->offset, (unsigned long long)p->file_size);
	return NNH5_OK;
}

int nnh5__policy_judge(nnh5__storage *s, const nnh5__policy *p, const char *path,
		       const char *display)
{
	int rc = check_layout(s, p, path, display);

	if (!rc)
		rc = check_logical(s, p, path, display);
	if (!rc && s->layout == H5D_CHUNKED)
		rc = check_chunks(s, p, path, display);
	if (!rc && s->layout != H5D_VIRTUAL)
		rc = check_stored(s, p, path, display);
	if (s->layout != H5D_CONTIGUOUS || s->logical_bytes == 0 || s->variable)
		s->offset = HADDR_UNDEF;
	return rc;
}

static bool grow(void **arr, size_t *cap, size_t len, size_t elsize)
{
	size_t ncap, bytes;
	void *q;

	if (len < *cap)
		return true;
	ncap = *cap ? 2 * *cap : 64;
	if (!nnh5__mul_size(ncap, elsize, &bytes))
		return false;
	q = nnh5__realloc(*arr, bytes);
	if (!q)
		return false;
	*arr = q;
	*cap = ncap;
	return true;
}

static int cmp_seen(unsigned long fa, haddr_t oa, const struct nnh5__seen *b)
{
	if (fa != b->fileno)
		return fa < b->fileno ? -1 : 1;
	return oa < b->obj ? -1 : oa > b->obj;
}

/* Index where (fileno, obj) is or would go in the sorted seen list; *found. */
static size_t seen_find(const nnh5__policy *p, unsigned long fileno, haddr_t obj, bool *found)
{
	size_t lo = 0, hi = p->n_seen;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_seen(fileno, obj, &p->seen[mid]);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*found = false;
	return lo;
}

/* First extent (sorted by start) whose start is >= start. */
static size_t ext_lower(const nnh5__policy *p, uint64_t start)
{
	size_t lo = 0, hi = p->n_ext;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->ext[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Count a first read against the per-load cap and remember its extent. */
static int record(nnh5__storage *s, nnh5__policy *p, const char *path, const char *display)
{
	bool found;
	size_t at = seen_find(p, s->fileno, s->addr, &found);

	if (found) {
		s->reread = true;
		return NNH5_OK;
	}
	if (s->logical_bytes > p->max_load_bytes - p->loaded_bytes)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': dataset '%s' (%llu bytes) would bring the data read from "
				   "this file past the per-load limit of %llu bytes (max_load_bytes)",
				   path, display, (unsigned long long)s->logical_bytes,
				   (unsigned long long)p->max_load_bytes);
	if (s->offset != HADDR_UNDEF && s->storage_bytes > 0) {
		uint64_t start = s->offset, end = start + s->storage_bytes;
		size_t i = ext_lower(p, start);
		const struct nnh5__extent *hit = NULL;
		if (i < p->n_ext && p->ext[i].start < end)
			hit = &p->ext[i];
		else if (i > 0 && p->ext[i - 1].end > start)
			hit = &p->ext[i - 1];
		if (hit)
			return nnh5__error(NNH5_ERR_UNSAFE,
					   "'%s': dataset '%s': its data (bytes %llu..%llu) overlaps "
					   "the data of another dataset read from this file (bytes "
					   "%llu..%llu): refused",
					   path, display, (unsigned long long)start,
					   (unsigned long long)end, (unsigned long long)hit->start,
					   (unsigned long long)hit->end);
		if (!grow((void **)&p->ext, &p->cap_ext, p->n_ext, sizeof *p->ext))
			return nnh5__nomem();
		memmove(&p->ext[i + 1], &p->ext[i], (p->n_ext - i) * sizeof *p->ext);
		p->ext[i] = (struct nnh5__extent){ start, end };
		p->n_ext++;
	}
	if (!grow((void **)&p->seen, &p->cap_seen, p->n_seen, sizeof *p->seen))
		return nnh5__nomem();
	memmove(&p->seen[at + 1], &p->seen[at], (p->n_seen - at) * sizeof *p->seen);
	p->seen[at] = (struct nnh5__seen){ s->fileno, s->addr };
	p->n_seen++;
	p->loaded_bytes += s->logical_bytes;
	return NNH5_OK;
}

int nnh5__policy_count(nnh5__storage *s, nnh5__policy *p, const char *path, const char *display,
		       const char *alias_of, bool tied, uint64_t *alias_bytes)
{
	uint64_t copies;

	if (!alias_of)
		return record(s, p, path, display);
	/* A tie is one buffer under two names: the first name counted it. */
	if (tied)
		return NNH5_OK;
	if (s->logical_bytes > p->max_load_bytes - p->loaded_bytes)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': dataset '%s' (%llu bytes, another name of '%s': an alias) "
				   "would bring the data read from this file past the per-load limit "
				   "of %llu bytes (max_load_bytes)",
				   path, display, (unsigned long long)s->logical_bytes, alias_of,
				   (unsigned long long)p->max_load_bytes);
	/*
	 * Aliases make one stored byte load as many: bound the copies by the
	 * file's size, so a load stays within about twice what the file holds.
	 */
	if (__builtin_add_overflow(*alias_bytes, s->logical_bytes, &copies) ||
	    copies > p->file_size)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': dataset '%s' is another name of '%s' (an alias): loading "
				   "its %llu bytes again would bring the copies of aliases in this "
				   "load past the file's size (%llu bytes)",
				   path, display, alias_of, (unsigned long long)s->logical_bytes,
				   (unsigned long long)p->file_size);
	*alias_bytes = copies;
	p->loaded_bytes += s->logical_bytes;
	return NNH5_OK;
}

int nnh5__policy_count_dataset(const nnh5__policy *p, uint64_t *datasets, const char *path,
				const char *start)
{
	if (++*datasets > p->max_tensors)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': group '%s' holds more than %llu datasets (max_tensors)", path,
				   start, (unsigned long long)p->max_tensors);
	return NNH5_OK;
}

int nnh5__policy_count_group(const nnh5__policy *p, uint64_t *groups, uint64_t depth,
			     const char *path, const char *start, const char *display)
{
	char esc[512];

	if (depth > p->max_depth)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': '%s' is nested deeper than %llu groups (max_depth)", path,
				   nnh5__escape(esc, sizeof esc, display),
				   (unsigned long long)p->max_depth);
	if (++*groups > p->max_groups)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': group '%s' holds more than %llu groups (max_groups)", path,
				   start, (unsigned long long)p->max_groups);
	return NNH5_OK;
}

void nnh5__policy_scratch(nnh5__policy *out, const nnh5__policy *p)
{
	*out = *p;
	out->loaded_bytes = 0;
	out->seen = NULL;
	out->ext = NULL;
	out->n_seen = out->cap_seen = out->n_ext = out->cap_ext = 0;
}
