/*
 * fuzz/fuzz_model.c - libFuzzer target: rebuild a model from an HDF5 file
 * image in memory (its architecture attributes, its parameters), run its
 * stored probe, and format it, with the default load policy and smaller
 * size limits. Failures are fine; crashes, sanitizer reports, leaks and
 * hangs inside nnh5 are not.
 */
#include <nnh5.h>

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_verify_result vr;
	nnh5_model *m = NULL;
	nnh5_file *f;
	char *text = NULL;

	o.max_tensor_bytes = 64u << 20;
	o.max_load_bytes = 256u << 20;
	if (nnh5_file_open_image(&f, data, size, "fuzz-model.h5", &o) != NNH5_OK)
		return 0;
	if (nnh5_file_read_model(&m, f, "/") == NNH5_OK) {
		nnh5_model_format(&text, m);
		nnh5_free(text);
		nnh5_model_free(m);
		nnh5_file_verify_model(&vr, f, "/");
	}
	nnh5_file_close(f);
	return 0;
}
