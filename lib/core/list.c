/*
 * lib/core/list.c - an ordered, growable list of owned tensors.
 */
#include "core/internal.h"
#include "nnh5/list.h"

struct nnh5_list {
	nnh5_tensor **items;
	size_t len;
	size_t cap;
};

int nnh5_list_new(nnh5_list **out)
{
	*out = nnh5__calloc(1, sizeof **out);
	return *out ? NNH5_OK : nnh5__nomem();
}

void nnh5_list_free(nnh5_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->len; i++)
		nnh5_tensor_free(list->items[i]);
	nnh5__free(list->items);
	nnh5__free(list);
}

int nnh5_list_append(nnh5_list *list, nnh5_tensor *t)
{
	if (t && t->held)
		return nnh5__held_error("list item", NULL);
	if (list->len == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		nnh5_tensor **items;
		size_t bytes;
		if (!nnh5__mul_size(cap, sizeof *items, &bytes))
			return nnh5__nomem();
		items = nnh5__realloc(list->items, bytes);
		if (!items)
			return nnh5__nomem();
		list->items = items;
		list->cap = cap;
	}
	list->items[list->len++] = t;
	if (t)
		t->held = true;
	return NNH5_OK;
}

size_t nnh5_list_len(const nnh5_list *list)
{
	return list->len;
}

nnh5_tensor *nnh5_list_get(const nnh5_list *list, size_t i)
{
	return i < list->len ? list->items[i] : NULL;
}

int nnh5_list_export(nnh5_tensor_export *out, size_t n, nnh5_list *list, size_t first)
{
	int rc;
	size_t k = nnh5__tensor_export_check(&rc, out, n, list->len, first);

	for (size_t i = 0; !rc && i < k; i++)
		rc = nnh5__tensor_export(&out[i], list->items[first + i], NULL);
	if (rc)
		nnh5__tensor_export_undo(out, k);
	return rc;
}
