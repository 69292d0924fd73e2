/*
 * fuzz/fuzz_load.c - libFuzzer target: every loader of nnh5 over an HDF5
 * file image in memory (nnh5_file_open_image, HDF5's core driver), with the
 * default load policy and smaller size limits (so that a declared size the
 * policy accepts never exceeds the fuzzer's memory limit).
 *
 * The input is the file. Loads that fail are fine; what must never happen
 * inside nnh5 is a crash, a sanitizer report, a leak or a hang.
 */
#include <nnh5.h>

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nnh5_open_options fuzz_options(void)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	o.max_tensor_bytes = 64u << 20;
	o.max_load_bytes = 256u << 20;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nnh5_open_options o = fuzz_options();
	nnh5_file *f;
	nnh5_dict *d = NULL;
	nnh5_list *l = NULL;
	nnh5_tensor *t = NULL;
	nnh5_kind kind;
	char *s = NULL;
	int64_t v;
	uint64_t sum;
	bool has;

	if (nnh5_file_open_image(&f, data, size, "fuzz.h5", &o) != NNH5_OK)
		return 0;
	nnh5_file_kind(&kind, f, "/");
	nnh5_file_get_attr_string(&s, f, "/", "nnh5_kind");
	nnh5_free(s);
	nnh5_file_get_attr_int(&v, f, "/", "nnh5_format_version");
	nnh5_file_stored_checksum(&sum, &has, f, "tensor");
	nnh5_file_read_tensor(&t, f, "tensor");
	nnh5_tensor_free(t);
	nnh5_file_read_state_dict(&d, f, "/");
	nnh5_dict_free(d);
	nnh5_file_read_dict(&d, f, "/");
	nnh5_dict_free(d);
	nnh5_file_read_list(&l, f, "/");
	nnh5_list_free(l);
	nnh5_file_close(f);
	return 0;
}
