/*
 * tests/formats/st_check.c - the C side of the safetensors differential test
 * (st_diff.py): for each path read from stdin (one a line), open it
 * (strict, or lenient when the line starts with "L ") and print one line:
 *   OK <n> <hex name> <dtype> <d0,d1,..> <xxh3 hex> ... M <hex key>=<hex value> ...
 * or REFUSED <status>
 * A line "D DIR" loads the folder DIR (nnh5_safetensors_load_folder) and
 * prints the same kind of line. "roundtrip DIR": every dtype's tensor
 * through nnh5 -> safetensors -> nnh5, compared bitwise (exit 1 on a
 * difference). "resave IN FILE DIR MAX": IN read and written again as FILE
 * and as the folder DIR with shards of at most MAX bytes (st_writer.py).
 */
#include <nnh5.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names may hold spaces and newlines: printed as hex ("-" when empty). */
static void put_hex(const char *s)
{
	if (!*s)
		putchar('-');
	for (; *s; s++)
		printf("%02x", (unsigned char)*s);
}

static void print_dict(const nnh5_dict *d)
{
	printf("OK %zu", nnh5_dict_len(d));
	for (size_t i = 0; i < nnh5_dict_len(d); i++) {
		const nnh5_tensor *t = nnh5_dict_value(d, i);
		putchar(' ');
		put_hex(nnh5_dict_key(d, i));
		printf(" %s ", nnh5_dtype_name((int)nnh5_tensor_dtype(t)));
		for (size_t k = 0; k < nnh5_tensor_ndim(t); k++)
			printf("%s%" PRId64, k ? "," : "", nnh5_tensor_dim(t, k));
		printf("%s %016" PRIx64, nnh5_tensor_ndim(t) ? "" : "-", nnh5_tensor_checksum(t));
	}
	putchar('\n');
}

/* resave IN FILE DIR MAX: IN loaded, saved as FILE and as the folder DIR (its metadata kept). */
static int resave(char **argv)
{
	nnh5_safetensors *st;
	nnh5_dict *d;
	unsigned long long max = strtoull(argv[5], NULL, 10);
	int rc = nnh5_safetensors_open(&st, argv[2], NULL);

	if (rc || (rc = nnh5_safetensors_load(&d, argv[2], NULL))) {
		printf("resave: %s\n", nnh5_error_message());
		return 1;
	}
	size_t nm = nnh5_safetensors_metadata_len(st);
	const char *k[64], *v[64];
	for (size_t i = 0; i < nm && i < 64; i++) {
		k[i] = nnh5_safetensors_metadata_key(st, i);
		v[i] = nnh5_safetensors_metadata_value(st, i);
	}
	rc = nnh5_safetensors_save(argv[3], d, nm, k, v);
	if (!rc)
		rc = nnh5_safetensors_save_folder(argv[4], d, max, nm, k, v);
	if (rc)
		printf("resave: %s\n", nnh5_error_message());
	nnh5_dict_free(d);
	nnh5_safetensors_close(st);
	return rc ? 1 : 0;
}

static int check_one(const char *path, bool lenient)
{
	nnh5_safetensors_options o = NNH5_SAFETENSORS_OPTIONS_INIT;
	nnh5_safetensors *st;
	int rc;

	o.lenient = lenient;
	if (strncmp(path, "D ", 2) == 0) { /* a folder */
		nnh5_dict *d;
		rc = nnh5_safetensors_load_folder(&d, path + 2, &o);
		if (rc) {
			printf("REFUSED %s\n", nnh5_status_name(rc));
			return 0;
		}
		print_dict(d);
		nnh5_dict_free(d);
		return 0;
	}
	rc = nnh5_safetensors_open(&st, path, &o);
	if (rc) {
		printf("REFUSED %s\n", nnh5_status_name(rc));
		return 0;
	}
	printf("OK %zu", nnh5_safetensors_len(st));
	for (size_t i = 0; i < nnh5_safetensors_len(st); i++) {
		const char *name = nnh5_safetensors_name(st, i);
		nnh5_tensor *t;
		if (nnh5_safetensors_get(&t, st, name)) {
			printf(" GETFAILED\n");
			nnh5_safetensors_close(st);
			return 1;
		}
		putchar(' ');
		put_hex(name);
		printf(" %s ", nnh5_dtype_name((int)nnh5_tensor_dtype(t)));
		for (size_t d = 0; d < nnh5_tensor_ndim(t); d++)
			printf("%s%" PRId64, d ? "," : "", nnh5_tensor_dim(t, d));
		printf("%s %016" PRIx64, nnh5_tensor_ndim(t) ? "" : "-", nnh5_tensor_checksum(t));
		nnh5_tensor_free(t);
	}
	for (size_t i = 0; i < nnh5_safetensors_metadata_len(st); i++)
	{
		printf(" M ");
		put_hex(nnh5_safetensors_metadata_key(st, i));
		putchar('=');
		put_hex(nnh5_safetensors_metadata_value(st, i));
	}
	putchar('\n');
	nnh5_safetensors_close(st);
	return 0;
}

static int roundtrip(const char *dir)
{
	char path[4096], h5[4096];
	nnh5_dict *sd, *back, *again;
	int bad = 0;
	const char *mk[] = { "format", "note" }, *mv[] = { "pt", "caf\xc3\xa9 \"quoted\"\n" };

	snprintf(path, sizeof path, "%s/rt.safetensors", dir);
	snprintf(h5, sizeof h5, "%s/rt.h5", dir);
	if (nnh5_dict_new(&sd))
		return 1;
	for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
		nnh5_tensor *t;
		int64_t shape[2] = { 3, d + 1 };
		if (d == NNH5_COMPLEX128)
			continue; /* safetensors has no complex128: refused below */
		nnh5_tensor_new(&t, (nnh5_dtype)d, 2, shape);
		unsigned char *p = nnh5_tensor_mutable_data(t);
		for (size_t i = 0; i < nnh5_tensor_nbytes(t); i++)
			p[i] = (unsigned char)(d == NNH5_BOOL ? i % 2 : i * 37 + (size_t)d);
		nnh5_dict_set(sd, nnh5_dtype_name(d), t);
	}
	/* nnh5 -> safetensors -> nnh5 (HDF5) -> safetensors: bitwise all the way */
	if (nnh5_safetensors_save(path, sd, 2, mk, mv) ||
	    nnh5_safetensors_load(&back, path, NULL) || nnh5_save_state_dict(h5, back) ||
	    nnh5_load_state_dict(&again, h5)) {
		printf("roundtrip failed: %s\n", nnh5_error_message());
		return 1;
	}
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		const char *k = nnh5_dict_key(sd, i);
		if (!nnh5_tensor_bitwise_equal(nnh5_dict_value(sd, i), nnh5_dict_get(again, k))) {
			printf("roundtrip: %s differs\n", k);
			bad = 1;
		}
	}
	printf("roundtrip: %zu dtypes bitwise equal through safetensors and HDF5\n",
	       nnh5_dict_len(sd) - (size_t)bad);
	{
		nnh5_tensor *c;
		nnh5_dict *one;
		nnh5_dict_new(&one);
		nnh5_tensor_zeros(&c, NNH5_COMPLEX128, 1, (int64_t[]){ 2 });
		nnh5_dict_set(one, "c", c);
		if (nnh5_safetensors_save(path, one, 0, NULL, NULL) != NNH5_ERR_TYPE ||
		    !strstr(nnh5_error_message(), "complex128")) {
			printf("complex128 was not refused by name\n");
			bad = 1;
		}
		nnh5_dict_free(one);
	}
	{
		/*
		 * An empty I64 tensor at the odd offset 1 has no elements to align:
		 * a view, not a copy (the copy used to memcpy to NULL), and the
		 * I16 tensor at offset 1 is copied and counted.
		 */
		static const char hdr[] =
			"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
			"\"e\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[1,1]},"
			"\"h\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[1,3]}}";
		/* The header padded to 8 as writers do: the data starts 8-aligned. */
		static _Alignas(8) unsigned char buf[8 + sizeof hdr + 8 + 3];
		size_t n = (sizeof hdr - 1 + 7) / 8 * 8, total = 8 + n + 3;
		nnh5_safetensors *st;
		nnh5_tensor *e, *h;
		for (int i = 0; i < 8; i++)
			buf[i] = (unsigned char)((n >> (8 * i)) & 0xff);
		memset(buf + 8, ' ', n);
		memcpy(buf + 8, hdr, sizeof hdr - 1);
		if (nnh5_safetensors_open_buffer(&st, buf, total, "odd.safetensors", NULL) ||
		    nnh5_safetensors_get(&e, st, "e") || nnh5_safetensors_get(&h, st, "h")) {
			printf("odd offsets: %s\n", nnh5_error_message());
			return 1;
		}
		if (nnh5_safetensors_copies(st) != 1 || nnh5_tensor_owns_data(e) ||
		    !nnh5_tensor_owns_data(h)) {
			printf("odd offsets: %zu copies, expected 1 (the I16; the empty tensor is a "
			       "view)\n", nnh5_safetensors_copies(st));
			bad = 1;
		}
		nnh5_tensor_free(e);
		nnh5_tensor_free(h);
		nnh5_safetensors_close(st);
	}
	nnh5_dict_free(sd);
	nnh5_dict_free(back);
	nnh5_dict_free(again);
	return bad;
}

int main(int argc, char **argv)
{
	char line[8192];

	if (argc == 3 && strcmp(argv[1], "roundtrip") == 0)
		return roundtrip(argv[2]);
	if (argc == 6 && strcmp(argv[1], "resave") == 0)
		return resave(argv);
	while (fgets(line, sizeof line, stdin)) {
		bool lenient = strncmp(line, "L ", 2) == 0;
		line[strcspn(line, "\n")] = '\0';
		if (check_one(lenient ? line + 2 : line, lenient))
			return 1;
	}
	return 0;
}
