/*
 * nnh5_format.c - what every subcommand of the nnh5 tool prints with: names
 * from files escaped for the terminal, shapes and grouped digits, object
 * paths typed by the user normalised, and allocation that ends the tool on
 * out of memory (a command-line tool has nothing better to do then).
 *
 * Names come from untrusted files: control characters, C1 controls,
 * backslashes and invalid UTF-8 never reach the terminal unescaped.
 */
#include "nnh5_util.h"

#include <stdlib.h>
#include <string.h>

void *tool_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("nnh5: out of memory\n", stderr);
		exit(EXIT_USAGE);
	}
	return p;
}

void *tool_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fputs("nnh5: out of memory\n", stderr);
		exit(EXIT_USAGE);
	}
	return q;
}

char *tool_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = tool_xmalloc(n);
	memcpy(p, s, n);
	return p;
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid (overlong, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls (U+0080..U+009F) act on some terminals like ESC sequences. */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return n;
}

/* keep_backslash: s is already escaped text (the library's messages escape names). */
static char *escape(const char *s, bool keep_backslash)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), o = 0;
	char *out = tool_xmalloc(4 * len + 1);

	while (*p) {
		size_t n = utf8_len(p);
		if (*p == '\\' && !keep_backslash) {
			out[o++] = '\\';
			out[o++] = '\\';
			p++;
		} else if (n == 0 || *p < 0x20 || *p == 0x7f) {
			static const char hex[] = "0123456789abcdef";
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
			p++;
		} else {
			memcpy(out + o, p, n);
			o += n;
			p += n;
		}
	}
	out[o] = '\0';
	return out;
}

char *tool_escape(const char *s)
{
	return escape(s, false);
}

char *tool_escape_message(const char *s)
{
	return escape(s, true);
}

void tool_put(FILE *fp, const char *s)
{
	char *e = tool_escape(s);
	fputs(e, fp);
	free(e);
}

void tool_put_message(FILE *fp, const char *s)
{
	char *e = tool_escape_message(s);
	fputs(e, fp);
	free(e);
}

void tool_group_digits(char *buf, size_t n, uint64_t v)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
	size_t o = 0;

	for (int i = 0; i < len && o + 2 < n; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
}

void tool_shape_str(char *buf, size_t n, bool null_space, size_t ndim, const int64_t *shape)
{
	size_t o;

	if (null_space) {
		snprintf(buf, n, "null");
		return;
	}
	o = (size_t)snprintf(buf, n, "(");
	for (size_t i = 0; i < ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
	/* PyTorch writes torch.Size([5]); a Python tuple (5,) reads best next to h5py. */
	if (o < n)
		snprintf(buf + o, n - o, ndim == 1 ? ",)" : ")");
}

char *tool_norm_path(const char *path)
{
	size_t len = strlen(path), o = 0;
	char *out = tool_xmalloc(len + 2);
	const char *p = path;

	out[o++] = '/';
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			free(out);
			return NULL;
		}
		if (n > 0) {
			if (o > 1)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	return out;
}
