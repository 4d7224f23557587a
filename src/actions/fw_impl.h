/*
 * fw_impl - helpers shared by the firewall backends (not for other modules).
 *
 * fw_jspec: a jail compiled once into what a backend needs (set base name,
 * nftables match text for its ports/protocol). fw_map: an open-addressing
 * hash from (jail number, address) to a 64-bit value, used for batch
 * coalescing and the null backend's table of live bans.
 */
#ifndef MXJAIL_ACTIONS_FW_IMPL_H
#define MXJAIL_ACTIONS_FW_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "actions/fw.h"

#define FW_JAIL_NAME_MAX 200 /* nft set names may hold 255 bytes; keep room for suffixes */

struct fw_jspec {
	char *name;    /* jail name as given */
	char *base;    /* set base name (fw_set_base) */
	char *match;   /* nft port/protocol match ("" = all traffic) */
	char *port;    /* as given, for comparison */
	char *protocol;
	int reject;
};

/* Returns 0 or -EINVAL with a message. */
int fw_jspec_compile(const struct fw_jail *j, struct fw_jspec *out, char *err, size_t errlen);
void fw_jspec_clear(struct fw_jspec *s);
/* 1 when j describes the same rules as s. */
int fw_jspec_same(const struct fw_jspec *s, const struct fw_jail *j);

/* Format the message into err (if any); fw_errf returns -EINVAL, fw_errno -e,
 * so that `return fw_errf(err, errlen, ...)` reads naturally. */
int fw_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int fw_errno(char *err, size_t errlen, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

struct fw_map_ent {
	uint64_t val;
	uint32_t jail;
	uint8_t used, family, prefix;
	uint8_t a[16];
};

struct fw_map {
	struct fw_map_ent *e;
	size_t cap, n;
};

/* Returns the value slot for the key, inserting (value 0, *isnew = 1) when absent. */
uint64_t *fw_map_put(struct fw_map *m, uint32_t jail, const struct addr *a, int *isnew);
uint64_t *fw_map_get(const struct fw_map *m, uint32_t jail, const struct addr *a);
int fw_map_del(struct fw_map *m, uint32_t jail, const struct addr *a);
void fw_map_clear(struct fw_map *m);
void fw_map_free(struct fw_map *m);
void fw_map_key(const struct fw_map_ent *e, struct addr *out);

/* A jail's port list in iptables multiport form ("25,465,1000:2000"; names
 * resolved) and its protocols (FW_PROTO_* bits; FW_PROTO_ALL = every
 * protocol); *all = 1 when no port match is needed. 0 or -EINVAL with err. */
#define FW_PROTO_TCP 1u
#define FW_PROTO_UDP 2u
#define FW_PROTO_SCTP 4u
#define FW_PROTO_DCCP 8u
#define FW_PROTO_UDPLITE 16u
#define FW_PROTO_ALL 0x100u
int fw_jail_ports(const struct fw_jail *j, char **ports, unsigned *protos, int *all, char *err,
		  size_t errlen);

/* Runs the program name (from bindir, NULL = PATH) with up to three
 * arguments and input on stdin, at most 10 s; stdout into out (may be NULL).
 * 0 when it exited 0, else a negative errno with its stderr in err. Used for
 * iptables-restore/-save by the iptables and ipset backends. */
struct strbuf;
int fw_tool_run(const char *bindir, const char *name, const char *arg1, const char *arg2,
		const char *arg3, const char *input, struct strbuf *out, char *err, size_t errlen);

/* A jail's ports and target as the iptables-based backends (iptables,
 * ipset) keep them: the option text, to notice a change, and the
 * fw_jail_ports() form the rules are built from. */
#define FW_MULTIPORT_MAX 15  /* ports one multiport match takes, a range counting as two */
struct fw_ports {
	char *port, *protocol;     /* as given ("" when unset); NULL before the first set */
	char *ports;
	unsigned protos;
	int all, reject;
};
/* Sets p from j, freeing what it held; on error p is unchanged. 0 or -EINVAL with err. */
int fw_ports_set(struct fw_ports *p, const struct fw_jail *j, char *err, size_t errlen);
/* 1 when j has the port and protocol text p was set from. */
int fw_ports_same(const struct fw_ports *p, const struct fw_jail *j);
void fw_ports_clear(struct fw_ports *p);
/* p's rules as "-A HOOK[ -p PROTO[ -m multiport --dports LIST]]TAIL\n" lines:
 * one per protocol and multiport chunk, or a single rule for all traffic.
 * tail starts with a blank ("... -j DROP"). The caller frees the text. */
char *fw_ports_rules(const struct fw_ports *p, const char *hook, const char *tail);
/* The "-A ..." lines of rules appended to b as "OP ..." (OP "-I" or "-D"). */
void fw_rules_as(const char *rules, const char *op, struct strbuf *b);
/* body (filter table lines) as one `iptables-restore --noflush -w` batch,
 * ip6tables-restore when f is 1; an empty body runs nothing. */
int fw_restore(const char *bindir, int f, const char *body, char *err, size_t errlen);
/* Queues v for (jail k, a) in pend and returns 0; a negative k (a failed
 * jail lookup) is returned as it is. */
int fw_queue(struct fw_map *pend, int k, const struct addr *a, uint64_t v);

/* Clamps a timeout to FW_MAX_TIMEOUT (0 stays forever). */
unsigned long fw_clamp_timeout(unsigned long t);

#endif
