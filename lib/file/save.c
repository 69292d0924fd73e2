/*
 * lib/file/save.c - one object per file, in one call (torch.save / torch.load).
 * Each save is a whole new file committed atomically by nnh5_file_close().
 */
#include "file/file_internal.h"
#include "store/h5util.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/save.h"

#include <string.h>

/* Open path for writing, run write(), commit; discard on any failure. */
#define SAVE_BODY(path, write_call)                                   \
	do {                                                          \
		nnh5_file *f;                                         \
		int rc = nnh5_file_open(&f, (path), NNH5_CREATE);     \
		if (rc)                                               \
			return rc;                                    \
		rc = (write_call);                                    \
		if (rc) {                                             \
			nnh5_file_discard(f);                         \
			return rc;                                    \
		}                                                     \
		return nnh5_file_close(f);                            \
	} while (0)

#define LOAD_BODY(path, read_call)                                    \
	do {                                                          \
		nnh5_file *f;                                         \
		int rc = nnh5_file_open(&f, (path), NNH5_READ);       \
		if (rc)                                               \
			return rc;                                    \
		rc = (read_call);                                     \
		nnh5_file_close(f);                                   \
		return rc;                                            \
	} while (0)

static int write_single_tensor(nnh5_file *f, const nnh5_tensor *t)
{
	int rc = nnh5__file_set_attr_string(f, "/", "nnh5_kind", "tensor");
	return rc ? rc : nnh5_file_write_tensor(f, "tensor", t);
}

int nnh5_save_tensor(const char *path, const nnh5_tensor *t)
{
	SAVE_BODY(path, write_single_tensor(f, t));
}

static herr_t first_dataset_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
	H5O_info_t oi;
	char **found = data;

	if (info->type != H5L_TYPE_HARD || strncmp(name, "nnh5_", 5) == 0)
		return 0;
	if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
		return -1;
	if (oi.type != H5O_TYPE_DATASET)
		return 0;
	if (*found) {
		nnh5__free(*found);
		*found = NULL;
		return 1; /* a second dataset: ambiguous */
	}
	*found = nnh5__strdup(name);
	return *found ? 0 : -1;
}

static int read_single_tensor(nnh5_tensor **out, nnh5_file *f)
{
	char *name = NULL;
	herr_t st;
	int rc;

	*out = NULL;
	if (nnh5_file_has(f, "tensor"))
		return nnh5_file_read_tensor(out, f, "tensor");
	/* A file from another writer: accept it if it holds exactly one dataset. */
	nnh5__h5quiet quiet;
	nnh5__h5_quiet_begin(&quiet);
	st = H5Literate(nnh5__file_hid(f), H5_INDEX_NAME, H5_ITER_INC, NULL, first_dataset_cb,
			&name);
	H5Eclear2(H5E_DEFAULT);
	nnh5__h5_quiet_end(&quiet);
	if (st < 0 && !name)
		return nnh5__error(NNH5_ERR_FORMAT, "load '%s': cannot list the root group",
				   nnh5_file_path(f));
	if (!name)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "load '%s': no tensor at the root ('/tensor' is missing and %s)",
				   nnh5_file_path(f),
				   st > 0 ? "there are several datasets: name one with "
					    "nnh5_file_read_tensor()"
					  : "there is no dataset");
	rc = nnh5_file_read_tensor(out, f, name);
	nnh5__free(name);
	return rc;
}

int nnh5_load_tensor(nnh5_tensor **out, const char *path)
{
	*out = NULL;
	LOAD_BODY(path, read_single_tensor(out, f));
}

int nnh5_save_list(const char *path, const nnh5_list *list)
{
	SAVE_BODY(path, nnh5_file_write_list(f, "/", list));
}

int nnh5_load_list(nnh5_list **out, const char *path)
{
	*out = NULL;
	LOAD_BODY(path, nnh5_file_read_list(out, f, "/"));
}

int nnh5_save_dict(const char *path, const nnh5_dict *dict)
{
	SAVE_BODY(path, nnh5_file_write_dict(f, "/", dict));
}

int nnh5_load_dict(nnh5_dict **out, const char *path)
{
	*out = NULL;
	LOAD_BODY(path, nnh5_file_read_dict(out, f, "/"));
}

int nnh5_save_state_dict(const char *path, const nnh5_dict *sd)
{
	SAVE_BODY(path, nnh5_file_write_state_dict(f, "/", sd));
}

int nnh5_load_state_dict(nnh5_dict **out, const char *path)
{
	*out = NULL;
	LOAD_BODY(path, nnh5_file_read_state_dict(out, f, "/"));
}
