/*
 * lib/core/strbuf.c - a growable NUL-terminated string for building the text the
 * library hands out (tensor and model printing, long error messages). An
 * allocation failure latches 'oom' so callers check once at the end.
 */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

bool nnh5__strbuf_reserve(nnh5__strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *np;

	if (sb->oom)
		return false;
	if (__builtin_add_overflow(sb->len, extra, &need) ||
	    __builtin_add_overflow(need, (size_t)1, &need)) {
		sb->oom = true;
		return false;
	}
	if (need <= sb->cap)
		return true;
	cap = sb->cap ? sb->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	/* The first block comes from malloc: a user allocator need not accept realloc(NULL). */
	np = sb->p ? nnh5__realloc(sb->p, cap) : nnh5__malloc(cap);
	if (!np) {
		sb->oom = true;
		return false;
	}
	sb->p = np;
	sb->cap = cap;
	return true;
}

void nnh5__strbuf_putn(nnh5__strbuf *sb, const char *s, size_t n)
{
	if (!nnh5__strbuf_reserve(sb, n))
		return;
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

void nnh5__strbuf_puts(nnh5__strbuf *sb, const char *s)
{
	nnh5__strbuf_putn(sb, s, strlen(s));
}

void nnh5__strbuf_printf(nnh5__strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->oom = true;
		return;
	}
	if (!nnh5__strbuf_reserve(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}
