/*
 * fw_hostsdeny - the hostsdeny banaction as a native backend (see fw.h).
 *
 * fail2ban appends "ALL: <ip>" to /etc/hosts.deny per ban and deletes it with
 * `sed -i` per unban: one process per address, and a crash leaves lines
 * behind for ever. Here the lines live in one block the backend owns:
 *
 *     # BEGIN mxjail (managed by mxjail; edits inside are lost)
 *     ALL: 192.0.2.7
 *     ALL: [2001:db8::1]
 *     # END mxjail
 *
 * Each commit rewrites the file through a temp file + rename (same mode and
 * owner), so libwrap readers never see half a file and the admin's own lines
 * outside the block stay as written. Addresses banned by several jails are
 * written once. Prefixes use tcp_wrappers' forms: "192.0.2.0/255.255.255.0",
 * "[2001:db8::]/64". There are no timeouts in hosts.deny: the daemon's timers
 * unban.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define BEGIN_MARK "# BEGIN mxjail (managed by mxjail; edits inside are lost)"
#define BEGIN_PREFIX "# BEGIN mxjail"
#define END_MARK "# END mxjail"
#define MAX_FILE (64u << 20)

struct hd_st {
	char *path, *daemons;
	char **jails;            /* jail number -> name */
	size_t njails;
	struct fw_map live;      /* (jail, addr) -> 1 */
	int dirty;
	int written;             /* the block was written at least once */
};

static int hd_init(void **stp, const struct fw_options *o, char *err, size_t errlen)
{
	const char *dl = o->daemon_list && *o->daemon_list ? o->daemon_list : "ALL";
	for (const char *p = dl; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '#')
			return fw_errf(err, errlen, "hostsdeny: daemon_list must be one line without '#'");
	struct hd_st *s = xcalloc(1, sizeof *s);
	s->path = xstrdup(o->path && *o->path ? o->path : "/etc/hosts.deny");
	s->daemons = xstrdup(dl);
	*stp = s;
	return 0;
}

static void hd_free(void *st)
{
	struct hd_st *s = st;
	for (size_t i = 0; i < s->njails; i++)
		free(s->jails[i]);
	free(s->jails);
	fw_map_free(&s->live);
	free(s->path);
	free(s->daemons);
	free(s);
}

static uint32_t jail_no(struct hd_st *s, const char *name)
{
	for (size_t i = 0; i < s->njails; i++)
		if (strcmp(s->jails[i], name) == 0)
			return (uint32_t)i;
	s->jails = xrealloc(s->jails, (s->njails + 1) * sizeof *s->jails);
	s->jails[s->njails] = xstrdup(name);
	return (uint32_t)s->njails++;
}

static int hd_declare(void *st, const struct fw_jail *j, char *err, size_t errlen)
{
	if (!j || !j->name)
		return fw_errf(err, errlen, "hostsdeny: jail name missing");
	jail_no(st, j->name);
	return 0;
}

static int hd_ban(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		  char *err, size_t errlen)
{
	(void)timeout;
	struct hd_st *s = st;
	if (!j || !j->name)
		return fw_errf(err, errlen, "hostsdeny: jail name missing");
	int isnew;
	*fw_map_put(&s->live, jail_no(s, j->name), a, &isnew) = 1;
	if (isnew)
		s->dirty = 1;
	return 0;
}

static int hd_unban(void *st, const struct fw_jail *j, const struct addr *a, char *err, size_t errlen)
{
	struct hd_st *s = st;
	if (!j || !j->name)
		return fw_errf(err, errlen, "hostsdeny: jail name missing");
	if (fw_map_del(&s->live, jail_no(s, j->name), a))
		s->dirty = 1;
	return 0;
}

static void format_entry(const struct addr *a, char *buf, size_t len)
{
	struct addr host = *a;
	char txt[ADDR_STRLEN];
	if (a->family == 4) {
		host.prefix = 32;
		addr_format(&host, txt, sizeof txt);
		if (a->prefix >= 32) {
			snprintf(buf, len, "%s", txt);
		} else {
			uint32_t m = a->prefix ? 0xffffffffu << (32 - a->prefix) : 0;
			snprintf(buf, len, "%s/%u.%u.%u.%u", txt, m >> 24, (m >> 16) & 255, (m >> 8) & 255,
				 m & 255);
		}
	} else {
		host.prefix = 128;
		addr_format(&host, txt, sizeof txt);
		if (a->prefix >= 128)
			snprintf(buf, len, "[%s]", txt);
		else
			snprintf(buf, len, "[%s]/%d", txt, a->prefix);
	}
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The block text ("" when nothing is banned). */
static void build_block(struct hd_st *s, struct strbuf *b)
{
	if (!s->live.n)
		return;
	char **v = xcalloc(s->live.n, sizeof *v);
	size_t n = 0;
	for (size_t i = 0; i < s->live.cap; i++) {
		if (!s->live.e[i].used)
			continue;
		struct addr a;
		char e[ADDR_STRLEN + 32];
		fw_map_key(&s->live.e[i], &a);
		format_entry(&a, e, sizeof e);
		v[n++] = xstrdup(e);
	}
	qsort(v, n, sizeof *v, cmp_str);
	strbuf_addf(b, "%s\n", BEGIN_MARK);
	for (size_t i = 0; i < n; i++)
		if (!i || strcmp(v[i], v[i - 1]) != 0)
			strbuf_addf(b, "%s: %s\n", s->daemons, v[i]);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	strbuf_addf(b, "%s\n", END_MARK);
	free(v);
}

/* Reads the file; *exists = 0 when missing. Returns 0 or -errno. */
static int read_all(const char *path, struct strbuf *out, int *exists, struct stat *st)
{
	*exists = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	*exists = 1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int e = S_ISREG(st->st_mode) ? errno : EINVAL;
		close(fd);
		return -e;
	}
	char buf[65536];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (k == 0)
			break;
		if (out->len + (size_t)k > MAX_FILE) {
			close(fd);
			return -EFBIG;
		}
		strbuf_add(out, buf, (size_t)k);
	}
	close(fd);
	return 0;
}

/* Splits old into the admin's text (every line outside our block) and
 * reports whether a block was present and how many entry lines it had. */
static void strip_block(const char *old, size_t len, struct strbuf *keep, int *had, size_t *lines)
{
	*had = 0;
	*lines = 0;
	int inside = 0;
	const char *p = old, *end = old + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!inside && n >= strlen(BEGIN_PREFIX) && strncmp(p, BEGIN_PREFIX, strlen(BEGIN_PREFIX)) == 0) {
			inside = 1;
			*had = 1;
		} else if (inside && n == strlen(END_MARK) && strncmp(p, END_MARK, n) == 0) {
			inside = 0;
		} else if (inside) {
			(*lines)++;
		} else {
			strbuf_add(keep, p, n);
			strbuf_addc(keep, '\n');
		}
		p += n + (nl ? 1 : 0);
	}
}

static int write_file(struct hd_st *s, char *err, size_t errlen)
{
	struct strbuf old = STRBUF_INIT, text = STRBUF_INIT;
	struct stat st;
	memset(&st, 0, sizeof st);
	int exists;
	int r = read_all(s->path, &old, &exists, &st);
	if (r < 0) {
		strbuf_free(&old);
		return fw_errno(err, errlen, -r, "hostsdeny: reading %s: %s", s->path, strerror(-r));
	}
	int had;
	size_t nlines;
	strip_block(old.s ? old.s : "", old.len, &text, &had, &nlines);
	build_block(s, &text);
	if (!exists && !s->live.n) {
		strbuf_free(&old);
		strbuf_free(&text);
		return 0; /* nothing to write, nothing to remove */
	}
	if (exists && old.len == text.len && memcmp(old.s ? old.s : "", text.s ? text.s : "", old.len) == 0) {
		strbuf_free(&old);
		strbuf_free(&text);
		return 0;
	}
	char *tmp = xasprintf("%s.mxjail-XXXXXX", s->path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		strbuf_free(&old);
		strbuf_free(&text);
		return fw_errno(err, errlen, e, "hostsdeny: creating a temp file next to %s: %s", s->path,
				strerror(e));
	}
	int e = 0;
	fchmod(fd, exists ? (st.st_mode & 07777) : 0644);
	if (exists && geteuid() == 0)
		(void)!fchown(fd, st.st_uid, st.st_gid);
	size_t off = 0;
	while (off < text.len && !e) {
		ssize_t k = write(fd, text.s + off, text.len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			e = errno;
		else
			off += (size_t)k;
	}
	if (!e && fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, s->path) < 0)
		e = errno;
	if (e) {
		unlink(tmp);
		free(tmp);
		strbuf_free(&old);
		strbuf_free(&text);
		return fw_errno(err, errlen, e, "hostsdeny: writing %s: %s", s->path, strerror(e));
	}
	/* make the rename durable */
	char *dir = xstrdup(s->path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
	free(tmp);
	strbuf_free(&old);
	strbuf_free(&text);
	return 0;
}

static int hd_commit(void *st, char *err, size_t errlen)
{
	struct hd_st *s = st;
	if (!s->dirty)
		return 0;
	int r = write_file(s, err, errlen);
	if (r == 0) {
		s->dirty = 0;
		s->written = 1;
	}
	return r;
}

/* The block must hold one line per distinct address we ban. */
static int hd_check(void *st, char *err, size_t errlen)
{
	struct hd_st *s = st;
	if (!s->live.n || s->dirty)
		return 0;
	struct strbuf old = STRBUF_INIT, keep = STRBUF_INIT, want = STRBUF_INIT;
	struct stat sb;
	int exists, had;
	size_t lines;
	int r = read_all(s->path, &old, &exists, &sb);
	if (r < 0) {
		strbuf_free(&old);
		return fw_errno(err, errlen, -r, "hostsdeny: reading %s: %s", s->path, strerror(-r));
	}
	strip_block(old.s ? old.s : "", old.len, &keep, &had, &lines);
	build_block(s, &want);
	size_t wl = 0;
	for (size_t i = 0; i < want.len; i++)
		wl += want.s[i] == '\n';
	strbuf_free(&old);
	strbuf_free(&keep);
	strbuf_free(&want);
	if (!exists || !had || lines + 2 != wl)
		return fw_errno(err, errlen, ENOENT, "hostsdeny: %s lost mxjail's lines", s->path);
	return 0;
}

static int hd_rebuild(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	struct hd_st *s = st;
	fw_map_clear(&s->live);
	for (size_t i = 0; i < n; i++) {
		int isnew;
		if (!bans[i].jail || !bans[i].jail->name)
			continue;
		*fw_map_put(&s->live, jail_no(s, bans[i].jail->name), &bans[i].addr, &isnew) = 1;
	}
	s->dirty = 1;
	return hd_commit(st, err, errlen);
}

static int hd_flush(void *st, char *err, size_t errlen)
{
	struct hd_st *s = st;
	fw_map_clear(&s->live);
	s->dirty = 1;
	return hd_commit(st, err, errlen);
}

static int hd_stop(void *st, char *err, size_t errlen)
{
	return hd_flush(st, err, errlen);
}

const struct fw_backend fw_hostsdeny_backend = {
	.name = "hostsdeny",
	.init = hd_init,
	.declare = hd_declare,
	.ban = hd_ban,
	.unban = hd_unban,
	.commit = hd_commit,
	.check = hd_check,
	.rebuild = hd_rebuild,
	.flush = hd_flush,
	.stop = hd_stop,
	.free = hd_free,
};

/* Services whose Debian 12 builds do not consult hosts.deny. */
static const struct {
	const char *prefix;
	const char *note;
} no_libwrap[] = {
	{"postfix", "Postfix on Debian 12 is not linked with libwrap: hosts.deny does not block it"},
	{"sasl", "the sasl jail watches Postfix, which is not linked with libwrap on Debian 12"},
	{"dovecot", "Dovecot consults hosts.deny only with login_access_sockets = tcpwrap and a "
		    "tcpwrap service"},
	{"exim", "Exim on Debian 12 is not linked with libwrap: hosts.deny does not block it"},
	{"named", "BIND does not use libwrap: hosts.deny does not block DNS queries"},
	{"nginx", "nginx does not use libwrap: hosts.deny does not block it"},
	{"apache", "Apache does not use libwrap: hosts.deny does not block it"},
	{"courier", "Courier does not use libwrap: hosts.deny does not block it"},
	{"pure-ftpd", "Pure-FTPd on Debian 12 does not use libwrap: hosts.deny does not block it"},
	{"pureftpd", "Pure-FTPd on Debian 12 does not use libwrap: hosts.deny does not block it"},
	{"recidive", "hosts.deny blocks only services linked with libwrap (sshd, not Postfix)"},
};

const char *fw_hostsdeny_libwrap_note(const char *service)
{
	if (!service)
		return NULL;
	for (size_t i = 0; i < sizeof no_libwrap / sizeof no_libwrap[0]; i++)
		if (strncasecmp(service, no_libwrap[i].prefix, strlen(no_libwrap[i].prefix)) == 0)
			return no_libwrap[i].note;
	return NULL;
}
