/*
 * fuzz/fuzz_direct.c - libFuzzer target: the direct HDF5 reader
 * (lib/file/load_direct.c, lib/store/h5read.c) alone, without the HDF5 API
 * path it declines to, over the input as a file (a memfd, named through
 * /proc/self/fd: the reader opens files by path) with each one-call kind.
 *
 * What must never happen: a crash, a sanitizer report, a leak, a hang, or
 * a declined load that leaves a result or an error behind.
 */
#define _GNU_SOURCE /* syscall() */
#include "file/load_direct.h"
#include "core/internal.h"
#include "nnh5/dict.h"
#include "nnh5/list.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (fd < 0) {
		fd = (int)syscall(SYS_memfd_create, "nnh5-fuzz-direct", 1u /* MFD_CLOEXEC */);
		if (fd < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	for (int what = NNH5__DIRECT_TENSOR; what <= NNH5__DIRECT_STATE_DICT; what++) {
		nnh5_tensor *t = NULL;
		nnh5_list *l = NULL;
		nnh5_dict *d = NULL;
		void *out = what == NNH5__DIRECT_TENSOR ? (void *)&t
			    : what == NNH5__DIRECT_LIST ? (void *)&l : (void *)&d;
		bool done = false;
		int rc = nnh5__load_direct(&done, out, path, NULL, (nnh5__direct_what)what);
		if (rc || (!done && (t || l || d || nnh5_error_status() != NNH5_OK)))
			abort();
		nnh5_tensor_free(t);
		nnh5_list_free(l);
		nnh5_dict_free(d);
	}
	return 0;
}
