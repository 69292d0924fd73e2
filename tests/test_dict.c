/*
 * tests/test_dict.c - ordered dicts and lists: order, replacement, removal,
 * ownership, and hashed lookups over many keys.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

static nnh5_tensor *scalar(double v)
{
	nnh5_tensor *t;
	ok(nnh5_tensor_full(&t, NNH5_FLOAT64, 0, NULL, v));
	return t;
}

static void insertion_order(void **state)
{
	nnh5_dict *d;
	const char *keys[] = { "zeta", "alpha", "10", "9", "hidden.weight" };
	(void)state;
	ok(nnh5_dict_new(&d));
	for (int i = 0; i < 5; i++)
		ok(nnh5_dict_set(d, keys[i], scalar(i)));
	assert_int_equal(nnh5_dict_len(d), 5);
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(nnh5_dict_key(d, i), keys[i]);
		assert_true(nnh5_tensor_get(nnh5_dict_value(d, i), 0) == (double)i);
		assert_ptr_equal(nnh5_dict_get(d, keys[i]), nnh5_dict_value(d, i));
	}
	assert_null(nnh5_dict_get(d, "missing"));
	assert_null(nnh5_dict_key(d, 5));
	assert_null(nnh5_dict_value(d, 5));
	nnh5_dict_free(d);
}

static void replace_keeps_position(void **state)
{
	nnh5_dict *d;
	(void)state;
	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "a", scalar(1)));
	ok(nnh5_dict_set(d, "b", scalar(2)));
	ok(nnh5_dict_set(d, "a", scalar(3)));
	assert_int_equal(nnh5_dict_len(d), 2);
	assert_string_equal(nnh5_dict_key(d, 0), "a");
	assert_true(nnh5_tensor_get(nnh5_dict_get(d, "a"), 0) == 3.0);
	nnh5_dict_free(d);
}

static void remove_and_take(void **state)
{
	nnh5_dict *d;
	nnh5_tensor *t;
	(void)state;
	ok(nnh5_dict_new(&d));
	for (int i = 0; i < 4; i++) {
		char k[8];
		snprintf(k, sizeof k, "k%d", i);
		ok(nnh5_dict_set(d, k, scalar(i)));
	}
	ok(nnh5_dict_remove(d, "k1"));
	fails(NNH5_ERR_NOT_FOUND, nnh5_dict_remove(d, "k1"), "k1");
	ok(nnh5_dict_take(&t, d, "k2"));
	assert_true(nnh5_tensor_get(t, 0) == 2.0);
	nnh5_tensor_free(t);
	assert_int_equal(nnh5_dict_len(d), 2);
	assert_string_equal(nnh5_dict_key(d, 0), "k0");
	assert_string_equal(nnh5_dict_key(d, 1), "k3");
	/* Lookups still work after the entries moved. */
	assert_true(nnh5_tensor_get(nnh5_dict_get(d, "k3"), 0) == 3.0);
	fails(NNH5_ERR_NOT_FOUND, nnh5_dict_take(&t, d, "nope"), "nope");
	assert_null(t);
	nnh5_dict_free(d);
}

static void many_keys(void **state)
{
	nnh5_dict *d;
	char k[64];
	(void)state;
	ok(nnh5_dict_new(&d));
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof k, "layer%d.sub%d.weight", i / 10, i % 10);
		ok(nnh5_dict_set(d, k, scalar(i)));
	}
	assert_int_equal(nnh5_dict_len(d), 20000);
	for (int i = 19999; i >= 0; i--) {
		snprintf(k, sizeof k, "layer%d.sub%d.weight", i / 10, i % 10);
		nnh5_tensor *t = nnh5_dict_get(d, k);
		assert_non_null(t);
		assert_true(nnh5_tensor_get(t, 0) == (double)i);
		assert_string_equal(nnh5_dict_key(d, (size_t)i), k);
	}
	nnh5_dict_free(d);
}

static void null_key_and_free_null(void **state)
{
	nnh5_dict *d;
	nnh5_tensor *t = scalar(1);
	(void)state;
	ok(nnh5_dict_new(&d));
	fails(NNH5_ERR_INVALID, nnh5_dict_set(d, NULL, t), "NULL");
	nnh5_tensor_free(t); /* still the caller's after a failed set */
	nnh5_dict_free(d);
	nnh5_dict_free(NULL);
	nnh5_list_free(NULL);
	nnh5_tensor_free(NULL);
}

static void list_order(void **state)
{
	nnh5_list *l;
	(void)state;
	ok(nnh5_list_new(&l));
	for (int i = 0; i < 100; i++)
		ok(nnh5_list_append(l, scalar(i)));
	assert_int_equal(nnh5_list_len(l), 100);
	for (size_t i = 0; i < 100; i++)
		assert_true(nnh5_tensor_get(nnh5_list_get(l, i), 0) == (double)i);
	assert_null(nnh5_list_get(l, 100));
	nnh5_list_free(l);
}

/* One tensor in two containers would be freed twice: the second is refused. */
static void double_ownership_refused(void **state)
{
	nnh5_dict *a, *b;
	nnh5_list *l;
	nnh5_tensor *t, *u;
	(void)state;
	ok(nnh5_dict_new(&a));
	ok(nnh5_dict_new(&b));
	ok(nnh5_list_new(&l));
	ok(nnh5_tensor_zeros(&t, NNH5_FLOAT32, 0, NULL));
	ok(nnh5_dict_set(a, "w", t));
	fails(NNH5_ERR_INVALID, nnh5_dict_set(b, "w", t), "already held", "'w'");
	fails(NNH5_ERR_INVALID, nnh5_dict_set(a, "other", t), "already held");
	fails(NNH5_ERR_INVALID, nnh5_list_append(l, t), "already held");
	ok(nnh5_dict_set(a, "w", t)); /* the same key again: nothing changes */
	assert_int_equal(nnh5_dict_len(a), 1);
	assert_int_equal(nnh5_dict_len(b), 0);
	/* Taken out, it is the caller's again and may go elsewhere. */
	ok(nnh5_dict_take(&u, a, "w"));
	assert_ptr_equal(u, t);
	ok(nnh5_list_append(l, t));
	fails(NNH5_ERR_INVALID, nnh5_list_append(l, t), "already held");
	fails(NNH5_ERR_INVALID, nnh5_dict_set(b, "w", t), "already held");
	assert_int_equal(nnh5_list_len(l), 1);
	nnh5_dict_free(a);
	nnh5_dict_free(b);
	nnh5_list_free(l); /* frees t once */
}

/*
 * nnh5_dict_export() and nnh5_list_export(): one record per value, in order,
 * with a share that keeps the memory after the container is freed; pages
 * from a given value; a start past the end refused with nothing left over.
 */
static void export_outlives_container(void **state)
{
	nnh5_dict *d;
	nnh5_list *l;
	nnh5_tensor_export e[4], small[2];
	int64_t shape[3] = { 2, 3, 4 }, empty[2] = { 5, 0 };
	(void)state;
	ok(nnh5_dict_new(&d));
	nnh5_tensor *w = tu_seq(NNH5_FLOAT32, 3, shape, 0.5, 1);
	ok(nnh5_dict_set(d, "w", w));
	ok(nnh5_dict_tie(d, "tied", "w"));
	ok(nnh5_dict_set(d, "empty", tu_seq(NNH5_INT64, 2, empty, 1, 0)));
	nnh5_tensor *copy, *ref;
	ok(nnh5_tensor_clone(&copy, w));
	ok(nnh5_tensor_clone(&ref, w));
	/* a page from value 1: two records, each a share freed here */
	ok(nnh5_dict_export(small, 2, d, 1));
	assert_string_equal(small[0].key, "tied");
	assert_string_equal(small[1].key, "empty");
	assert_ptr_equal(small[0].data, nnh5_tensor_data(w));
	nnh5_tensor_free(small[0].tensor);
	nnh5_tensor_free(small[1].tensor);
	ok(nnh5_dict_export(small, 2, d, 3)); /* past the last value: nothing */
	assert_null(small[0].tensor);
	assert_int_equal(nnh5_dict_export(small, 2, d, 4), NNH5_ERR_INVALID);
	assert_null(small[0].tensor);
	assert_null(small[1].tensor);
	ok(nnh5_dict_export(e, 4, d, 0));
	assert_null(e[3].tensor);
	assert_string_equal(e[0].key, "w");
	assert_string_equal(e[1].key, "tied");
	assert_ptr_equal(e[0].data, nnh5_tensor_data(w));
	assert_ptr_equal(e[1].data, e[0].data);
	assert_int_equal(e[0].ndim, 3);
	assert_int_equal(e[0].shape[2], 4);
	assert_int_equal(e[0].shape[3], 0);
	assert_int_equal(e[0].nbytes, 96);
	assert_int_equal(e[0].dtype, NNH5_FLOAT32);
	assert_null(e[2].data);
	assert_int_equal(e[2].nbytes, 0);
	assert_int_equal(e[2].shape[1], 0);
	assert_int_equal(e[2].dtype, NNH5_INT64);
	nnh5_dict_free(d);
	/* The shares hold the memory now: freed with the last of them. */
	assert_memory_equal(e[1].data, nnh5_tensor_data(copy), 96);
	nnh5_tensor_free(e[1].tensor);
	assert_memory_equal(nnh5_tensor_data(e[0].tensor), nnh5_tensor_data(copy), 96);
	nnh5_tensor_free(e[0].tensor);
	nnh5_tensor_free(e[2].tensor);
	ok(nnh5_list_new(&l));
	ok(nnh5_list_append(l, copy));
	ok(nnh5_list_export(e, 4, l, 0));
	assert_null(e[0].key);
	assert_ptr_equal(e[0].data, nnh5_tensor_data(copy));
	nnh5_list_free(l);
	assert_memory_equal(e[0].data, nnh5_tensor_data(ref), 96);
	nnh5_tensor_free(e[0].tensor);
	nnh5_tensor_free(ref);
	ok(nnh5_list_new(&l));
	assert_int_equal(nnh5_list_export(small, 0, l, 0), NNH5_OK);
	assert_int_equal(nnh5_list_export(small, 2, l, 1), NNH5_ERR_INVALID);
	nnh5_list_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(insertion_order),
		cmocka_unit_test(replace_keeps_position),
		cmocka_unit_test(remove_and_take),
		cmocka_unit_test(many_keys),
		cmocka_unit_test(null_key_and_free_null),
		cmocka_unit_test(list_order),
		cmocka_unit_test(double_ownership_refused),
		cmocka_unit_test(export_outlives_container),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
