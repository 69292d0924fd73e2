/*
 * lib/core/dict.c - an insertion-ordered dict of name -> owned tensor.
 *
 * Entries live in an array in insertion order; an open-addressing hash table
 * of indices (xxh64 of the key) makes lookups O(1), so loading a state dict
 * of many thousands of keys stays linear.
 */
#include "core/internal.h"
#include "nnh5/dict.h"

#include <string.h>
#include "core/xxh.h"

struct entry {
	char *key;
	nnh5_tensor *value;
	uint64_t hash;
};

struct nnh5_dict {
	struct entry *entries;
	size_t len;
	size_t cap;
	/*
	 * index + 1 into entries; 0 = empty. 32 bits: a dict of 2^32 keys would
	 * need 100 GiB of entries and tensors, and a load of 12,000 tensors
	 * keeps 11 bytes a key here instead of 22.
	 */
	uint32_t *slots;
	size_t nslots; /* power of two, > 2 * len */
};

int nnh5_dict_new(nnh5_dict **out)
{
	*out = nnh5__calloc(1, sizeof **out);
	return *out ? NNH5_OK : nnh5__nomem();
}

void nnh5_dict_free(nnh5_dict *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->len; i++) {
		nnh5__free(d->entries[i].key);
		nnh5_tensor_free(d->entries[i].value);
	}
	nnh5__free(d->entries);
	nnh5__free(d->slots);
	nnh5__free(d);
}

static uint64_t key_hash(const char *key)
{
	return XXH64(key, strlen(key), 0);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const nnh5_dict *d, const char *key, uint64_t h)
{
	size_t mask = d->nslots - 1;
	size_t s = (size_t)h & mask;

	for (;;) {
		size_t idx = d->slots[s];
		if (idx == 0)
			return s;
		const struct entry *e = &d->entries[idx - 1];
		if (e->hash == h && strcmp(e->key, key) == 0)
			return s;
		s = (s + 1) & mask;
	}
}

static int rebuild_slots(nnh5_dict *d, size_t nslots)
{
	uint32_t *slots;

	if (nslots / 2 >= UINT32_MAX || !(slots = nnh5__calloc(nslots, sizeof *slots)))
		return nnh5__nomem();
	nnh5__free(d->slots);
	d->slots = slots;
	d->nslots = nslots;
	for (size_t i = 0; i < d->len; i++)
		d->slots[find_slot(d, d->entries[i].key, d->entries[i].hash)] = (uint32_t)(i + 1);
	return NNH5_OK;
}

static int grow_entries(nnh5_dict *d, size_t n)
{
	size_t bytes;
	struct entry *e;

	if (!nnh5__mul_size(n, sizeof *e, &bytes) || !(e = nnh5__realloc(d->entries, bytes)))
		return nnh5__nomem();
	d->entries = e;
	d->cap = n;
	return NNH5_OK;
}

/* Room for n entries in all; a failure leaves the content unchanged. */
static int reserve(nnh5_dict *d, size_t n)
{
	size_t nslots = d->nslots ? d->nslots : 16;
	int rc = n > d->cap ? grow_entries(d, n) : NNH5_OK;

	while (!rc && nslots <= 2 * n)
		nslots *= 2;
	return !rc && nslots != d->nslots ? rebuild_slots(d, nslots) : rc;
}

int nnh5__dict_reserve(nnh5_dict *d, size_t n)
{
	return n > d->len ? reserve(d, n) : NNH5_OK;
}

static long lookup(const nnh5_dict *d, const char *key)
{
	if (!d->nslots)
		return -1;
	size_t idx = d->slots[find_slot(d, key, key_hash(key))];
	return idx ? (long)(idx - 1) : -1;
}

int nnh5_dict_set(nnh5_dict *d, const char *key, nnh5_tensor *t)
{
	long at;
	char *k;

	if (!key)
		return nnh5__error(NNH5_ERR_INVALID, "dict key is NULL");
	at = lookup(d, key);
	if (at >= 0 && d->entries[at].value == t)
		return NNH5_OK; /* already there */
	if (t && t->held)
		return nnh5__held_error("dict key", key);
	if (at >= 0) {
		nnh5_tensor_free(d->entries[at].value);
		d->entries[at].value = t;
		if (t)
			t->held = true;
		return NNH5_OK;
	}
	k = nnh5__strdup(key);
	if (!k)
		return nnh5__nomem();
	int rc = nnh5__dict_adopt(d, k, t);
	if (rc)
		nnh5__free(k);
	return rc;
}

int nnh5__dict_adopt(nnh5_dict *d, char *key, nnh5_tensor *t)
{
	/* Grow everything first so that a failure leaves the dict unchanged. */
	int rc = d->len < d->cap ? NNH5_OK : grow_entries(d, d->cap ? d->cap * 2 : 8);
	if (!rc && 2 * (d->len + 1) >= d->nslots)
		rc = rebuild_slots(d, d->nslots ? d->nslots * 2 : 16);
	if (rc)
		return rc;
	uint64_t h = key_hash(key);
	d->entries[d->len] = (struct entry){ key, t, h };
	if (t)
		t->held = true;
	d->slots[find_slot(d, key, h)] = (uint32_t)(d->len + 1);
	d->len++;
	return NNH5_OK;
}

int nnh5_dict_take(nnh5_tensor **out, nnh5_dict *d, const char *key)
{
	long at = key ? lookup(d, key) : -1;

	*out = NULL;
	if (at < 0)
		return nnh5__error(NNH5_ERR_NOT_FOUND, "key '%s' not found", key ? key : "(null)");
	*out = d->entries[at].value;
	if (*out)
		(*out)->held = false; /* the caller's again */
	nnh5__free(d->entries[at].key);
	memmove(&d->entries[at], &d->entries[at + 1],
		(d->len - (size_t)at - 1) * sizeof d->entries[0]);
	d->len--;
	/* Indices after 'at' shifted: re-index (no allocation needed, same size). */
	memset(d->slots, 0, d->nslots * sizeof d->slots[0]);
	for (size_t i = 0; i < d->len; i++)
		d->slots[find_slot(d, d->entries[i].key, d->entries[i].hash)] = (uint32_t)(i + 1);
	return NNH5_OK;
}

int nnh5_dict_remove(nnh5_dict *d, const char *key)
{
	nnh5_tensor *t;
	int rc = nnh5_dict_take(&t, d, key);

	nnh5_tensor_free(t);
	return rc;
}

size_t nnh5_dict_len(const nnh5_dict *d)
{
	return d->len;
}

nnh5_tensor *nnh5_dict_get(const nnh5_dict *d, const char *key)
{
	long at = key ? lookup(d, key) : -1;
	return at >= 0 ? d->entries[at].value : NULL;
}

const char *nnh5_dict_key(const nnh5_dict *d, size_t i)
{
	return i < d->len ? d->entries[i].key : NULL;
}

nnh5_tensor *nnh5_dict_value(const nnh5_dict *d, size_t i)
{
	return i < d->len ? d->entries[i].value : NULL;
}

int nnh5_dict_export(nnh5_tensor_export *out, size_t n, nnh5_dict *d, size_t first)
{
	int rc;
	size_t k = nnh5__tensor_export_check(&rc, out, n, d->len, first);

	for (size_t i = 0; !rc && i < k; i++)
		rc = nnh5__tensor_export(&out[i], d->entries[first + i].value,
					 d->entries[first + i].key);
	if (rc)
		nnh5__tensor_export_undo(out, k);
	return rc;
}

int nnh5_dict_tie(nnh5_dict *d, const char *key, const char *target)
{
	nnh5_tensor *t, *s;
	int rc;

	if (!key || !target || strcmp(key, target) == 0)
		return nnh5__error(NNH5_ERR_INVALID, "tie '%s' to '%s': two different keys are needed",
				   key ? key : "(null)", target ? target : "(null)");
	t = nnh5_dict_get(d, target);
	if (!t)
		return nnh5__error(NNH5_ERR_NOT_FOUND, "tie '%s': key '%s' not found", key, target);
	if (!t->nbytes)
		return nnh5__error(NNH5_ERR_INVALID,
				   "tie '%s' to '%s': an empty tensor has no elements to share", key,
				   target);
	rc = nnh5_tensor_share(&s, t);
	if (rc)
		return rc;
	rc = nnh5_dict_set(d, key, s);
	if (rc)
		nnh5_tensor_free(s);
	return rc;
}
