/*
 * lib/file/map.c - lazy, zero-copy loading (nnh5/map.h): the file is mapped
 * read-only once, and each contiguous dataset becomes a read-only tensor
 * view of its bytes in the mapping. HDF5 reads only metadata; the kernel
 * reads a tensor's pages when they are first touched.
 *
 * Every dataset goes through the same checks as a plain read
 * (nnh5__dataset_init: the load policy, the type, the shape) before its
 * offset is used, and a view is made only when the stored bytes are exactly
 * the tensor's bytes and lie inside the file.
 */
#include "file/file_internal.h"
#include "store/h5util.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"

#include <nnh5/map.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

struct nnh5_map {
	nnh5_file *f;
	unsigned char *base; /* the whole file, PROT_READ */
	size_t size;
	bool verify;
	bool copy_unmappable;
};

int nnh5_map_open(nnh5_map **out, const char *path, const nnh5_map_options *opts)
{
	nnh5_map_options defaults = NNH5_MAP_OPTIONS_INIT;
	nnh5_map *m;
	uint64_t size;
	void *base;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (opts->version != NNH5_MAP_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "map '%s': unknown options version %u",
				   path ? path : "(null)", opts->version);
	m = nnh5__calloc(1, sizeof *m);
	if (!m)
		return nnh5__nomem();
	m->verify = opts->verify;
	m->copy_unmappable = opts->copy_unmappable;
	rc = nnh5_file_open_ext(&m->f, path, NNH5_READ, opts->file);
	if (rc) {
		nnh5__free(m);
		return rc;
	}
	ENTER;
	if (m->f->raw_fd < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "map '%s': the HDF5 file driver gives no file descriptor",
				 path);
		goto fail;
	}
	rc = nnh5__file_size(&size, m->f);
	if (rc)
		goto fail;
	if (size > SIZE_MAX) {
		rc = nnh5__error(NNH5_ERR_OVERFLOW, "map '%s': the file is too large to map", path);
		goto fail;
	}
	/* Mapping costs address space, not memory: pages come in when touched. */
	base = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, m->f->raw_fd, 0);
	if (base == MAP_FAILED) {
		rc = nnh5__error(NNH5_ERR_IO, "map '%s': mmap failed: %s", path, strerror(errno));
		goto fail;
	}
	m->base = base;
	m->size = (size_t)size;
	*out = m;
	LEAVE(NNH5_OK);
fail:
	nnh5_file_close(m->f);
	nnh5__free(m);
	LEAVE(rc);
}

void nnh5_map_close(nnh5_map *m)
{
	if (!m)
		return;
	if (m->base)
		munmap(m->base, m->size);
	nnh5_file_close(m->f);
	nnh5__free(m);
}

nnh5_file *nnh5_map_file(nnh5_map *m)
{
	return m->f;
}

bool nnh5_map_is_mapped(const nnh5_map *m, const nnh5_tensor *t)
{
	uintptr_t p, base;

	if (!m || !t || !t->data || !m->base)
		return false;
	/* As integers: comparing pointers into different objects is undefined. */
	p = (uintptr_t)t->data;
	base = (uintptr_t)m->base;
	return p >= base && p - base < m->size;
}

/* Why ds cannot be mapped, for the refusal message. */
static const char *unmappable_reason(const nnh5__dataset *ds)
{
	if (!ds->raw)
		return "in a byte order or type that needs converting";
	hid_t dcpl = H5Dget_create_plist(ds->id);
	H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
	if (dcpl >= 0)
		H5Pclose(dcpl);
	H5Eclear2(H5E_DEFAULT);
	switch (layout) {
	case H5D_COMPACT: return "compact (inside the metadata, under 4 KiB)";
	case H5D_CHUNKED: return "chunked";
	case H5D_CONTIGUOUS: return "without allocated storage (never written)";
	default: return "in a layout that cannot be mapped";
	}
}

/*
 * The tensor of an initialised dataset: a view of the mapping, or a copy.
 * check: compare the data with its stored checksum (counted in *checked).
 */
static int map_dataset(nnh5_tensor **out, nnh5_map *m, nnh5__dataset *ds, const char *display,
		       bool check, bool copy, size_t *checked)
{
	nnh5_file *f = m->f;
	nnh5_tensor *t = NULL;
	uint64_t stored = 0;
	int has = 0, rc;

	*out = NULL;
	if (check || f->require_checksums) {
		has = nnh5__dataset_expected_checksum(&stored, f, ds->id, display);
		if (has < 0)
			return has;
	}
	if (ds->nbytes && ds->raw && ds->offset != UINT64_MAX) {
		/*
		 * Inside the mapping and inside the file as it is now: a page past
		 * the end of a file that shrank since the open would be SIGBUS.
		 */
		rc = nnh5__dataset_check_bounds(f, ds, m->size, display);
		if (rc)
			return rc;
		rc = nnh5_tensor_view_const(&t, ds->dtype, ds->ndim, ds->shape,
					    m->base + ds->offset, ds->nbytes);
		if (rc)
			return nnh5__error_wrap(rc, "'%s': dataset '%s'", f->path, display);
		/* the view cannot be normalised: reads its pages (bool tensors only) */
		rc = nnh5__check_bool(t, NNH5_ERR_FORMAT, f->path, "dataset", display);
		if (rc) {
			nnh5_tensor_free(t);
			return rc;
		}
	} else if (copy || ds->nbytes == 0) {
		rc = nnh5__dataset_read(&t, f, ds, display);
		if (rc)
			return rc;
	} else {
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': dataset '%s' is stored %s and cannot be mapped (reading "
				   "it into memory is turned off: copy_unmappable)",
				   f->path, display, unmappable_reason(ds));
	}
	if (check && has) {
		uint64_t actual = nnh5_tensor_checksum(t);
		if (actual != stored) {
			nnh5_tensor_free(t);
			return nnh5__error(NNH5_ERR_CHECKSUM,
					   "'%s': dataset '%s' is damaged: its data hashes to %016llx "
					   "but the stored checksum is %016llx",
					   f->path, display, (unsigned long long)actual,
					   (unsigned long long)stored);
		}
		if (checked)
			(*checked)++;
	}
	*out = t;
	return NNH5_OK;
}

/* What a walk's loader needs: the map, whether to verify, whether to copy what cannot be mapped. */
struct map_ctx {
	nnh5_map *m;
	bool check;
	bool copy;
	size_t checked;
};

static int load_map(nnh5_tensor **out, nnh5_file *f, hid_t did, const char *display, void *p)
{
	struct map_ctx *c = p;
	nnh5__dataset ds;
	int rc;

	nnh5__plugin_guard plugins;

	*out = NULL;
	nnh5__policy_plugins_off(&f->policy, &plugins); /* a copied dataset may be filtered */
	rc = nnh5__dataset_init(&ds, f, did, display);
	if (!rc) {
		rc = map_dataset(out, c->m, &ds, display, c->check, c->copy, &c->checked);
		nnh5__dataset_release(&ds);
	}
	nnh5__policy_plugins_restore(&plugins);
	return rc;
}

int nnh5_map_tensor(nnh5_tensor **out, nnh5_map *m, const char *name)
{
	struct map_ctx c = { m, m->verify, m->copy_unmappable, 0 };
	hid_t did;
	int rc;

	ENTER;
	*out = NULL;
	rc = nnh5__file_open_dataset(&did, m->f, name);
	if (rc)
		LEAVE(rc);
	rc = load_map(out, m->f, did, name, &c);
	H5Dclose(did);
	LEAVE(rc);
}

int nnh5_map_state_dict(nnh5_dict **out, nnh5_map *m, const char *name)
{
	struct map_ctx c = { m, m->verify, m->copy_unmappable, 0 };

	ENTER;
	LEAVE(nnh5__file_read_group(out, m->f, name, '.', load_map, &c));
}

int nnh5_map_dict(nnh5_dict **out, nnh5_map *m, const char *name)
{
	struct map_ctx c = { m, m->verify, m->copy_unmappable, 0 };

	ENTER;
	LEAVE(nnh5__file_read_group(out, m->f, name, '/', load_map, &c));
}

int nnh5_map_verify(size_t *checked, nnh5_map *m, const char *name)
{
	/* Verification reads every byte anyway: what cannot be mapped is read. */
	struct map_ctx c = { m, true, true, 0 };
	H5O_type_t type = H5O_TYPE_UNKNOWN;
	nnh5_tensor *t = NULL;
	nnh5_dict *d = NULL;
	int rc;

	ENTER;
	if (checked)
		*checked = 0;
	rc = nnh5__file_check_path(m->f, name);
	if (!rc)
		rc = nnh5__file_check_exists(m->f, name);
	if (!rc)
		rc = nnh5__file_object_type(&type, m->f, m->f->fid,
					    nnh5__file_is_root(name) ? "/" : name);
	if (rc)
		LEAVE(rc);
	if (type == H5O_TYPE_GROUP) {
		rc = nnh5__file_read_group(&d, m->f, name, '/', load_map, &c);
		nnh5_dict_free(d);
	} else {
		hid_t did;
		rc = nnh5__file_open_dataset(&did, m->f, name);
		if (!rc) {
			rc = load_map(&t, m->f, did, name, &c);
			H5Dclose(did);
		}
		nnh5_tensor_free(t);
	}
	if (!rc && checked)
		*checked = c.checked;
	LEAVE(rc);
}
