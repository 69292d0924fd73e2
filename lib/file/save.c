/*
 * lib/file/save.c - one object per file, in one call (torch.save / torch.load).
 * Each save is a whole new file committed atomically by nnh5_file_close().
 */
#include "file/file_internal.h"
#include "file/load_direct.h"
#include "file/save_direct.h"
#include "file/walk.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/save.h"

#include <string.h>

/* Open path for writing with opts, run write(), commit; discard on any failure. */
#define SAVE_BODY(path, opts, write_call)                             \
	do {                                                          \
		nnh5_file *f;                                         \
		int rc = nnh5_file_open_ext(&f, (path), NNH5_CREATE, (opts)); \
		if (rc)                                               \
			return rc;                                    \
		rc = (write_call);                                    \
		if (rc) {                                             \
			nnh5_file_discard(f);                         \
			return rc;                                    \
		}                                                     \
		return nnh5_file_close(f);                            \
	} while (0)

/*
 * The direct writer takes a save whose options it writes as the API path
 * would: the defaults, or valid options without compression (durable or
 * not). Anything else goes to nnh5_file_open_ext(), which refuses invalid
 * options and compresses.
 */
#define SAVE_DIRECT(path, what, obj, opts)                                            \
	do {                                                                          \
		if (!(opts) || ((opts)->version == NNH5_OPEN_OPTIONS_VERSION &&      \
				(opts)->compression == NNH5_COMPRESSION_NONE))       \
			NNH5__SAVE_DIRECT((path), (what), (obj), !(opts) || (opts)->durable); \
	} while (0)

#define LOAD_BODY(path, opts, read_call)                              \
	do {                                                          \
		nnh5_file *f;                                         \
		int rc = nnh5_file_open_ext(&f, (path), NNH5_READ, (opts)); \
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
	return nnh5_save_tensor_ext(path, t, NULL);
}

int nnh5_save_tensor_ext(const char *path, const nnh5_tensor *t, const nnh5_open_options *opts)
{
	SAVE_DIRECT(path, NNH5__DIRECT_TENSOR, t, opts);
	SAVE_BODY(path, opts, write_single_tensor(f, t));
}

/* The root's datasets, for a file from another writer: the first one's path, and how many. */
struct root_datasets {
	char *first;
	size_t n;
};

static int root_dataset_cb(const nnh5__item *it, void *p)
{
	struct root_datasets *r = p;

	if (it->e->depth != 1 || it->e->alias_of ||
	    (it->e->type != NNH5_ENTRY_TENSOR && it->e->type != NNH5_ENTRY_DATASET))
		return NNH5_OK;
	if (r->n++ == 0 && !(r->first = nnh5__strdup(it->e->path)))
		return nnh5__nomem();
	return NNH5_OK;
}

static int read_single_tensor(nnh5_tensor **out, nnh5_file *f)
{
	nnh5__walk_options o = { false, false, false, false, true, false, false, H5O_TYPE_GROUP, NULL };
	struct root_datasets r = { NULL, 0 };
	nnh5__obj obj;
	int rc;

	ENTER;
	*out = NULL;
	rc = nnh5__resolve(&obj, f, "tensor");
	if (rc == NNH5_OK) {
		H5Oclose(obj.id);
		LEAVE(nnh5_file_read_tensor(out, f, "tensor"));
	}
	if (rc != NNH5_ERR_NOT_FOUND)
		LEAVE(rc);
	nnh5_error_clear();
	/* A file from another writer: accept it if it holds exactly one dataset. */
	rc = nnh5__walk(f, "/", &o, root_dataset_cb, &r);
	if (!rc && r.n != 1)
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "load '%s': no tensor at the root ('/tensor' is missing and %s)",
				 nnh5_file_path(f),
				 r.n ? "there are several datasets: name one with "
				       "nnh5_file_read_tensor()"
				     : "there is no dataset");
	if (!rc)
		rc = nnh5_file_read_tensor(out, f, r.first);
	nnh5__free(r.first);
	LEAVE(rc);
}

int nnh5_load_tensor(nnh5_tensor **out, const char *path)
{
	*out = NULL;
	NNH5__LOAD_DIRECT(path, NULL, NNH5__DIRECT_TENSOR, out);
	LOAD_BODY(path, NULL, read_single_tensor(out, f));
}

int nnh5_save_list(const char *path, const nnh5_list *list)
{
	return nnh5_save_list_ext(path, list, NULL);
}

int nnh5_save_list_ext(const char *path, const nnh5_list *list, const nnh5_open_options *opts)
{
	SAVE_DIRECT(path, NNH5__DIRECT_LIST, list, opts);
	SAVE_BODY(path, opts, nnh5_file_write_list(f, "/", list));
}

int nnh5_load_list(nnh5_list **out, const char *path)
{
	return nnh5_load_list_ext(out, path, NULL);
}

int nnh5_load_list_ext(nnh5_list **out, const char *path, const nnh5_open_options *opts)
{
	*out = NULL;
	NNH5__LOAD_DIRECT(path, opts, NNH5__DIRECT_LIST, out);
	LOAD_BODY(path, opts, nnh5_file_read_list(out, f, "/"));
}

int nnh5_save_dict(const char *path, const nnh5_dict *dict)
{
	return nnh5_save_dict_ext(path, dict, NULL);
}

int nnh5_save_dict_ext(const char *path, const nnh5_dict *dict, const nnh5_open_options *opts)
{
	SAVE_DIRECT(path, NNH5__DIRECT_DICT, dict, opts);
	SAVE_BODY(path, opts, nnh5_file_write_dict(f, "/", dict));
}

int nnh5_load_dict(nnh5_dict **out, const char *path)
{
	return nnh5_load_dict_ext(out, path, NULL);
}

int nnh5_load_dict_ext(nnh5_dict **out, const char *path, const nnh5_open_options *opts)
{
	*out = NULL;
	NNH5__LOAD_DIRECT(path, opts, NNH5__DIRECT_DICT, out);
	LOAD_BODY(path, opts, nnh5_file_read_dict(out, f, "/"));
}

int nnh5_save_state_dict(const char *path, const nnh5_dict *sd)
{
	return nnh5_save_state_dict_ext(path, sd, NULL);
}

int nnh5_save_state_dict_ext(const char *path, const nnh5_dict *sd, const nnh5_open_options *opts)
{
	SAVE_DIRECT(path, NNH5__DIRECT_STATE_DICT, sd, opts);
	SAVE_BODY(path, opts, nnh5_file_write_state_dict(f, "/", sd));
}

int nnh5_load_state_dict(nnh5_dict **out, const char *path)
{
	return nnh5_load_state_dict_ext(out, path, NULL);
}

int nnh5_load_state_dict_ext(nnh5_dict **out, const char *path, const nnh5_open_options *opts)
{
	*out = NULL;
	NNH5__LOAD_DIRECT(path, opts, NNH5__DIRECT_STATE_DICT, out);
	LOAD_BODY(path, opts, nnh5_file_read_state_dict(out, f, "/"));
}
