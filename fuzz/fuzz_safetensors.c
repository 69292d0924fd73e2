/*
 * fuzz/fuzz_safetensors.c - libFuzzer target: the safetensors reader over an
 * input in memory, strict and lenient, every tensor fetched. Refusals are
 * fine; a crash, a sanitizer report, a leak or a hang is a bug.
 */
#include <nnh5.h>

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int lenient = 0; lenient < 2; lenient++) {
		nnh5_safetensors_options o = NNH5_SAFETENSORS_OPTIONS_INIT;
		nnh5_safetensors *st;
		o.lenient = lenient;
		if (nnh5_safetensors_open_buffer(&st, data, size, "fuzz.safetensors", &o))
			continue;
		for (size_t i = 0; i < nnh5_safetensors_len(st); i++) {
			nnh5_tensor *t;
			if (nnh5_safetensors_get(&t, st, nnh5_safetensors_name(st, i)) == NNH5_OK)
				nnh5_tensor_free(t);
		}
		for (size_t i = 0; i < nnh5_safetensors_metadata_len(st); i++)
			(void)nnh5_safetensors_metadata_get(st, nnh5_safetensors_metadata_key(st, i));
		nnh5_safetensors_close(st);
	}
	return 0;
}
