/*
 * lib/core/error.c - status names and the per-thread error message.
 *
 * The message lives in thread-local storage of fixed size, so recording an
 * error never allocates (out-of-memory reports cannot fail) and the caller
 * never frees it.
 */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

#define MSG_SIZE 2048

static _Thread_local char last_msg[MSG_SIZE];
static _Thread_local int last_status;

const char *nnh5_status_name(int status)
{
	switch (status) {
	case NNH5_OK: return "NNH5_OK";
	case NNH5_ERR_INVALID: return "NNH5_ERR_INVALID";
	case NNH5_ERR_NOMEM: return "NNH5_ERR_NOMEM";
	case NNH5_ERR_IO: return "NNH5_ERR_IO";
	case NNH5_ERR_NOT_FOUND: return "NNH5_ERR_NOT_FOUND";
	case NNH5_ERR_FORMAT: return "NNH5_ERR_FORMAT";
	case NNH5_ERR_TYPE: return "NNH5_ERR_TYPE";
	case NNH5_ERR_SHAPE: return "NNH5_ERR_SHAPE";
	case NNH5_ERR_OVERFLOW: return "NNH5_ERR_OVERFLOW";
	case NNH5_ERR_HDF5: return "NNH5_ERR_HDF5";
	case NNH5_ERR_EXISTS: return "NNH5_ERR_EXISTS";
	case NNH5_ERR_CHECKSUM: return "NNH5_ERR_CHECKSUM";
	case NNH5_ERR_UNSAFE: return "NNH5_ERR_UNSAFE";
	case NNH5_ERR_BUSY: return "NNH5_ERR_BUSY";
	default: return "NNH5_ERR_UNKNOWN";
	}
}

const char *nnh5_error_message(void)
{
	return last_msg;
}

int nnh5_error_status(void)
{
	return last_status;
}

void nnh5_error_clear(void)
{
	last_msg[0] = '\0';
	last_status = NNH5_OK;
}

const char *nnh5_version(void)
{
	return NNH5_VERSION_STRING;
}

int nnh5__verror(int status, const char *fmt, va_list ap)
{
	vsnprintf(last_msg, sizeof last_msg, fmt, ap);
	last_status = status;
	return status;
}

int nnh5__error(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nnh5__verror(status, fmt, ap);
	va_end(ap);
	return status;
}

int nnh5__nomem(void)
{
	static const char msg[] = "out of memory";

	memcpy(last_msg, msg, sizeof msg);
	last_status = NNH5_ERR_NOMEM;
	return NNH5_ERR_NOMEM;
}

int nnh5__held_error(const char *what, const char *key)
{
	return nnh5__error(NNH5_ERR_INVALID,
			   "%s%s%s%s: the tensor is already held by a dict or a list, which would "
			   "free it twice (give each container its own tensor: nnh5_tensor_clone())",
			   what, key ? " '" : "", key ? key : "", key ? "'" : "");
}

int nnh5__error_wrap(int status, const char *fmt, ...)
{
	char prefix[MSG_SIZE];
	char old[MSG_SIZE];
	va_list ap;
	int n;

	memcpy(old, last_msg, sizeof old);
	va_start(ap, fmt);
	n = vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	if (n < 0)
		prefix[0] = '\0';
	/* Precision-bounded so the compiler can see nothing is lost silently. */
	if (old[0])
		snprintf(last_msg, sizeof last_msg, "%.1000s: %.1000s", prefix, old);
	else
		snprintf(last_msg, sizeof last_msg, "%.2000s", prefix);
	last_status = status;
	return status;
}
