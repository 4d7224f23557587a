/*
 * evspool - append-only evidence store (see evspool.h).
 *
 * An entry is [previous entry's offset: 8 bytes][text length: 4 bytes][text],
 * the text being the failure's lines, each with its NUL. Offsets are logical:
 * the bytes below `fsize` are in the file, the rest in `buf`. In file mode the
 * buffer is flushed when it passes FLUSH_AT bytes, so the evidence of tens of
 * thousands of tracked addresses sits in the page cache (reclaimable, not the
 * daemon's RSS) instead of the heap. The file is private to this process
 * (O_TMPFILE, else an unlinked mkostemp name) and never outlives it: the
 * tracked failures are not persistent state either.
 *
 * A failed write leaves the unwritten bytes in the buffer and the spool in
 * memory mode from then on; reads see one byte sequence whatever the split.
 * Chains only point backwards, which is what the reader checks so that a
 * damaged file cannot make it loop.
 */
#include "jails/evspool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xmalloc.h"

#define HDR 12
#define FLUSH_AT 16384
#define PEEK 512 /* one pread usually fetches a whole entry */

struct evspool {
	char *dir;      /* NULL: memory only */
	int fd;         /* -1 until the first flush */
	int failed;     /* the file is unusable: memory from here on */
	uint64_t fsize; /* bytes in the file */
	char *buf;      /* the bytes after fsize */
	size_t blen, bcap;
};

struct evspool *evspool_new(const char *dir)
{
	struct evspool *s = xcalloc(1, sizeof *s);
	s->dir = dir ? xstrdup(dir) : NULL;
	s->fd = -1;
	return s;
}

void evspool_free(struct evspool *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->buf);
	free(s->dir);
	free(s);
}

uint64_t evspool_size(const struct evspool *s)
{
	return s->fsize + s->blen;
}

int evspool_on_disk(const struct evspool *s)
{
	return s->dir && !s->failed;
}

static int open_file(struct evspool *s)
{
	int fd = -1;
#ifdef O_TMPFILE
	fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
	if (fd < 0) {
		/* file systems without O_TMPFILE: a name that exists only for a moment */
		char *p = xasprintf("%s/.mxjail-evidence-XXXXXX", s->dir);
		fd = mkostemp(p, O_CLOEXEC);
		if (fd >= 0)
			unlink(p);
		free(p);
	}
	s->fd = fd;
	return fd < 0 ? -1 : 0;
}

static void flush(struct evspool *s)
{
	if (!s->blen || !evspool_on_disk(s))
		return;
	if (s->fd < 0 && open_file(s) < 0) {
		s->failed = 1;
		return;
	}
	size_t done = 0;
	while (done < s->blen) {
		ssize_t w = pwrite(s->fd, s->buf + done, s->blen - done, (off_t)(s->fsize + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	s->fsize += done;
	s->blen -= done;
	memmove(s->buf, s->buf + done, s->blen);
	if (s->blen) {
		s->failed = 1; /* disk full or gone: keep the rest in memory */
		return;
	}
	if (s->bcap > 2 * FLUSH_AT) {
		/* an outsized entry went through: give its room back */
		s->buf = xrealloc(s->buf, FLUSH_AT);
		s->bcap = FLUSH_AT;
	}
}

static void reserve(struct evspool *s, size_t need)
{
	if (s->blen + need <= s->bcap)
		return;
	size_t cap = s->bcap ? s->bcap : (evspool_on_disk(s) ? FLUSH_AT : 256);
	while (cap < s->blen + need)
		cap *= 2;
	s->buf = xrealloc(s->buf, cap);
	s->bcap = cap;
}

uint64_t evspool_append(struct evspool *s, uint64_t prev, const char *const *lines, size_t n)
{
	size_t tlen = 0;
	for (size_t i = 0; i < n; i++)
		tlen += strlen(lines[i] ? lines[i] : "") + 1;
	if (tlen > UINT32_MAX)
		return prev; /* not a log line any reader keeps: leave the chain as it was */
	if (evspool_on_disk(s) && s->blen && s->blen + HDR + tlen > FLUSH_AT)
		flush(s);
	reserve(s, HDR + tlen);
	uint64_t off = evspool_size(s);
	uint32_t len = (uint32_t)tlen;
	char *p = s->buf + s->blen;
	memcpy(p, &prev, 8);
	memcpy(p + 8, &len, 4);
	p += HDR;
	for (size_t i = 0; i < n; i++) {
		const char *l = lines[i] ? lines[i] : "";
		size_t k = strlen(l) + 1;
		memcpy(p, l, k);
		p += k;
	}
	s->blen += HDR + tlen;
	if (s->blen >= FLUSH_AT)
		flush(s);
	return off;
}

/* Copies [off, off + len) wherever it lives; -1 when the file cannot be read. */
static int read_at(const struct evspool *s, uint64_t off, size_t len, char *dst)
{
	while (len && off < s->fsize) {
		size_t k = s->fsize - off < len ? (size_t)(s->fsize - off) : len;
		ssize_t r = pread(s->fd, dst, k, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		dst += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	if (len)
		memcpy(dst, s->buf + (off - s->fsize), len);
	return 0;
}

struct ent {
	char *text;
	size_t len, nlines;
};

size_t evspool_read(struct evspool *s, uint64_t off, size_t want, char **out)
{
	uint64_t size = evspool_size(s);
	struct ent *e = NULL;
	size_t ne = 0, cap = 0, total = 0;
	while (off != EVSPOOL_NONE && total < want && off <= size && size - off >= HDR) {
		char peek[PEEK];
		size_t got = size - off < PEEK ? (size_t)(size - off) : PEEK;
		if (read_at(s, off, got, peek) < 0)
			break;
		uint64_t prev;
		uint32_t len;
		memcpy(&prev, peek, 8);
		memcpy(&len, peek + 8, 4);
		if (len == 0 || len > size - off - HDR)
			break;
		char *text = xmalloc(len);
		size_t have = got - HDR < len ? got - HDR : len;
		memcpy(text, peek + HDR, have);
		if (have < len && read_at(s, off + HDR + have, len - have, text + have) < 0) {
			free(text);
			break;
		}
		text[len - 1] = '\0';
		size_t nl = 0;
		for (size_t i = 0; i < len; i++)
			nl += text[i] == '\0';
		e = xgrow(e, &cap, ne, sizeof *e);
		e[ne++] = (struct ent){text, len, nl};
		total += nl;
		if (prev != EVSPOOL_NONE && prev >= off)
			break; /* chains point backwards; anything else is damage */
		off = prev;
	}
	/* oldest entry first; its oldest lines may be more than `want` allows */
	size_t skip = total > want ? total - want : 0, k = 0;
	for (size_t i = ne; i-- > 0;) {
		for (const char *p = e[i].text; p < e[i].text + e[i].len; p += strlen(p) + 1) {
			if (skip) {
				skip--;
				continue;
			}
			out[k++] = xstrdup(p);
		}
		free(e[i].text);
	}
	free(e);
	return k;
}
