/*
 * fwcheck - line-driven driver for the firewall backends (tests only).
 *
 * Used by tests/e2e/test_nft.py, which runs it inside a network namespace.
 * Reads one command per line on stdin and answers one line on stdout:
 * "ok [details]" or "err ERRNO message". Commands:
 *   init [nft|null] [table=T] [family=F] [setonly] [families=4|6|46]
 *   jail NAME PORT|- PROTOCOL|- [reject]     define (or change) a jail
 *   declare NAME
 *   ban NAME ADDR TIMEOUT | unban NAME ADDR
 *   bulk NAME N TIMEOUT [unban]   N generated hosts 10.128.0.0 + i and 2001:db8:ff::i
 *   commit | check | flush | stop
 *   rebuild NAME ADDR TIMEOUT [NAME ADDR TIMEOUT ...]
 *   bulkrebuild NAME N TIMEOUT    rebuild with N generated hosts
 * commit, rebuild and bulk report "ms=..." (wall time of the call).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actions/fw.h"
#include "net/addr.h"

#define MAXJ 32

struct jdef {
	char name[64], port[256], proto[32];
	struct fw_jail j;
};

static struct jdef jails[MAXJ];
static int njails;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static struct fw_jail *jail_get(const char *name)
{
	for (int i = 0; i < njails; i++)
		if (strcmp(jails[i].name, name) == 0)
			return &jails[i].j;
	if (njails == MAXJ)
		return NULL;
	struct jdef *d = &jails[njails++];
	snprintf(d->name, sizeof d->name, "%s", name);
	d->j.name = d->name;
	d->j.protocol = "tcp";
	return &d->j;
}

/* i-th generated host: even i -> 10.128.0.0 + i/2, odd i -> 2001:db8:ff:: + i/2 */
static void gen(unsigned long i, struct addr *a)
{
	unsigned long k = i / 2;
	memset(a, 0, sizeof *a);
	if (i % 2 == 0) {
		a->family = 4;
		a->prefix = 32;
		a->a[0] = 10;
		a->a[1] = (uint8_t)(128 + ((k >> 16) & 0x3f));
		a->a[2] = (uint8_t)(k >> 8);
		a->a[3] = (uint8_t)k;
	} else {
		static const uint8_t p[6] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff};
		a->family = 6;
		a->prefix = 128;
		memcpy(a->a, p, 6);
		a->a[13] = (uint8_t)(k >> 16);
		a->a[14] = (uint8_t)(k >> 8);
		a->a[15] = (uint8_t)k;
	}
}

static int parse(const char *s, struct addr *a)
{
	return addr_parse_cidr(s, strlen(s), a);
}

static void result(int r, const char *err, const char *extra)
{
	if (r < 0)
		printf("err %d %s\n", -r, err);
	else
		printf("ok%s%s\n", extra ? " " : "", extra ? extra : "");
	fflush(stdout);
}

int main(void)
{
	struct fw fw = {0};
	char line[65536], err[1024], extra[128];
	while (fgets(line, sizeof line, stdin)) {
		char *argv[256];
		int argc = 0;
		for (char *t = strtok(line, " \t\r\n"); t && argc < 256; t = strtok(NULL, " \t\r\n"))
			argv[argc++] = t;
		if (argc == 0)
			continue;
		err[0] = '\0';
		int r = 0;
		const char *cmd = argv[0];
		double t0 = now_ms();
		if (strcmp(cmd, "init") == 0) {
			struct fw_options o = {0};
			const struct fw_backend *be = &fw_nft_backend;
			for (int i = 1; i < argc; i++) {
				if (strcmp(argv[i], "null") == 0)
					be = &fw_null_backend;
				else if (strncmp(argv[i], "table=", 6) == 0)
					o.table = argv[i] + 6;
				else if (strncmp(argv[i], "family=", 7) == 0)
					o.table_family = argv[i] + 7;
				else if (strcmp(argv[i], "setonly") == 0)
					o.set_only = 1;
				else if (strncmp(argv[i], "families=", 9) == 0)
					o.families = (strchr(argv[i] + 9, '4') ? FW_FAMILY_4 : 0) |
						     (strchr(argv[i] + 9, '6') ? FW_FAMILY_6 : 0);
			}
			fw_close(&fw);
			/* strings must outlive init only; copy anyway as argv is reused */
			static char tb[128], fb[32];
			if (o.table) {
				snprintf(tb, sizeof tb, "%s", o.table);
				o.table = tb;
			}
			if (o.table_family) {
				snprintf(fb, sizeof fb, "%s", o.table_family);
				o.table_family = fb;
			}
			r = fw_open(&fw, be, &o, err, sizeof err);
			result(r, err, NULL);
			continue;
		}
		if (!fw.be) {
			result(-EINVAL, "init first", NULL);
			continue;
		}
		if (strcmp(cmd, "jail") == 0 && argc >= 4) {
			struct fw_jail *j = jail_get(argv[1]);
			struct jdef *d = (struct jdef *)((char *)j - offsetof(struct jdef, j));
			snprintf(d->port, sizeof d->port, "%s", argv[2]);
			snprintf(d->proto, sizeof d->proto, "%s", argv[3]);
			j->port = strcmp(argv[2], "-") ? d->port : NULL;
			j->protocol = strcmp(argv[3], "-") ? d->proto : NULL;
			j->reject = argc > 4 && strcmp(argv[4], "reject") == 0;
			r = fw_jail_check(j, err, sizeof err);
			result(r, err, NULL);
		} else if (strcmp(cmd, "declare") == 0 && argc == 2) {
			r = fw_declare(&fw, jail_get(argv[1]), err, sizeof err);
			result(r, err, NULL);
		} else if ((strcmp(cmd, "ban") == 0 && argc == 4) || (strcmp(cmd, "unban") == 0 && argc == 3)) {
			struct addr a;
			if (parse(argv[2], &a) < 0) {
				result(-EINVAL, "bad address", NULL);
				continue;
			}
			if (cmd[0] == 'b')
				r = fw_ban(&fw, jail_get(argv[1]), &a, strtoul(argv[3], NULL, 10), err, sizeof err);
			else
				r = fw_unban(&fw, jail_get(argv[1]), &a, err, sizeof err);
			result(r, err, NULL);
		} else if (strcmp(cmd, "bulk") == 0 && argc >= 4) {
			unsigned long n = strtoul(argv[2], NULL, 10), t = strtoul(argv[3], NULL, 10);
			int unban = argc > 4 && strcmp(argv[4], "unban") == 0;
			struct fw_jail *j = jail_get(argv[1]);
			for (unsigned long i = 0; i < n && r == 0; i++) {
				struct addr a;
				gen(i, &a);
				r = unban ? fw_unban(&fw, j, &a, err, sizeof err)
					  : fw_ban(&fw, j, &a, t, err, sizeof err);
			}
			double t1 = now_ms();
			if (r == 0)
				r = fw_commit(&fw, err, sizeof err);
			snprintf(extra, sizeof extra, "ms=%.1f queue_ms=%.1f", now_ms() - t0, t1 - t0);
			result(r, err, extra);
		} else if (strcmp(cmd, "bulkrebuild") == 0 && argc == 4) {
			size_t n = strtoul(argv[2], NULL, 10);
			struct fw_ban *b = calloc(n ? n : 1, sizeof *b);
			for (size_t i = 0; i < n; i++) {
				b[i].jail = jail_get(argv[1]);
				gen(i, &b[i].addr);
				b[i].timeout = strtoul(argv[3], NULL, 10);
			}
			r = fw_rebuild(&fw, b, n, err, sizeof err);
			free(b);
			snprintf(extra, sizeof extra, "ms=%.1f", now_ms() - t0);
			result(r, err, extra);
		} else if (strcmp(cmd, "commit") == 0) {
			r = fw_commit(&fw, err, sizeof err);
			snprintf(extra, sizeof extra, "ms=%.1f", now_ms() - t0);
			result(r, err, extra);
		} else if (strcmp(cmd, "check") == 0) {
			r = fw_check(&fw, err, sizeof err);
			result(r, err, NULL);
		} else if (strcmp(cmd, "flush") == 0) {
			r = fw_flush(&fw, err, sizeof err);
			result(r, err, NULL);
		} else if (strcmp(cmd, "stop") == 0) {
			r = fw_stop(&fw, err, sizeof err);
			result(r, err, NULL);
		} else if (strcmp(cmd, "rebuild") == 0 && (argc - 1) % 3 == 0) {
			size_t n = (size_t)(argc - 1) / 3;
			struct fw_ban *b = calloc(n ? n : 1, sizeof *b);
			for (size_t i = 0; i < n && r == 0; i++) {
				b[i].jail = jail_get(argv[1 + 3 * i]);
				if (parse(argv[2 + 3 * i], &b[i].addr) < 0) {
					r = -EINVAL;
					snprintf(err, sizeof err, "bad address %s", argv[2 + 3 * i]);
				}
				b[i].timeout = strtoul(argv[3 + 3 * i], NULL, 10);
			}
			if (r == 0)
				r = fw_rebuild(&fw, b, n, err, sizeof err);
			free(b);
			snprintf(extra, sizeof extra, "ms=%.1f", now_ms() - t0);
			result(r, err, extra);
		} else if (strcmp(cmd, "nulllog") == 0) {
			const char *l = fw_null_log(&fw);
			printf("ok %zu\n%s.\n", fw_null_count(&fw), l ? l : "");
			fflush(stdout);
		} else {
			result(-EINVAL, "unknown command or wrong arguments", NULL);
		}
	}
	fw_close(&fw);
	return 0;
}
