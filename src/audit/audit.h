/*
 * audit - `mxjail audit`: hardening findings for Postfix, Dovecot and mxjail.
 *
 * Interface: the readers (postconf.c, doveconf.c) turn saved or live output of
 * `postconf -n/-d/-P/-M` and `doveconf -n` into plain data; the check modules
 * (checks_postfix.c, checks_dovecot.c, checks_mxjail.c) add findings to an
 * audit_report; audit.c scores and prints it as a table or JSON. Every check has
 * an entry in audit_checks[] (id, default severity, title), which the unit tests
 * use to prove that each one is exercised.
 *
 * Ownership: every struct owns copies of its strings; *_free() releases them.
 * Nothing here prints or exits; unreadable input goes into a struct diag.
 */
#ifndef MXJAIL_AUDIT_AUDIT_H
#define MXJAIL_AUDIT_AUDIT_H

#include <stddef.h>

#include "core/kvlist.h"

struct diag;
struct strbuf;
struct config;

enum audit_sev { AUDIT_HIGH, AUDIT_MEDIUM, AUDIT_LOW, AUDIT_INFO };

struct audit_check {
	const char *id;        /* e.g. "PF-RELAY-MYNETWORKS" */
	enum audit_sev sev;    /* usual severity; a finding may differ */
	const char *title;
};
extern const struct audit_check audit_checks[];
extern const size_t audit_ncheck;

struct audit_finding {
	char *id;
	enum audit_sev sev;
	char *where;   /* "main.cf", "submission/inet (587)", "dovecot", "jail [x]" */
	char *seen;    /* parameter(s) and the value seen */
	char *why;     /* one sentence */
	char *fix;     /* the exact command or configuration line */
};

struct audit_report {
	struct audit_finding *v;
	size_t n, cap;
	char **notes;  /* what was assumed (built-in defaults, hidden values...) */
	size_t nnotes, notescap;
};

/* Adds a finding. A second finding with the same id and seen text only adds
 * its `where` to the first one, so a main.cf value shared by every smtpd
 * service is listed once with all the services it applies to. */
void audit_add(struct audit_report *r, const char *id, enum audit_sev sev, const char *where,
	       const char *seen, const char *why, const char *fix);
void audit_note(struct audit_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first finding with this id, or NULL. */
const struct audit_finding *audit_find(const struct audit_report *r, const char *id);
size_t audit_count(const struct audit_report *r, enum audit_sev sev);
/* 100 minus a weight per finding (high 25, medium 10, low 3), at least 0. */
int audit_score(const struct audit_report *r);
const char *audit_sev_name(enum audit_sev sev);
/* The table grouped by severity (high first), then the score line. */
void audit_format_text(const struct audit_report *r, struct strbuf *out);
void audit_format_json(const struct audit_report *r, struct strbuf *out);
void audit_report_free(struct audit_report *r);

/* ---- Postfix (postconf.c) ---- */

struct pf_service {
	char *name;      /* master.cf field 1: "smtp", "submission", "127.0.0.1:2587" */
	char *type;      /* "inet", "unix", "pass"... */
	char *command;   /* "smtpd", ... ; "" when only known from postconf -P */
	struct kvlist over; /* -o name=value */
};

struct pf_conf {
	struct kvlist main;      /* postconf -n (explicit main.cf settings) */
	struct kvlist defaults;  /* postconf -d, or the built-in Postfix 3.7 subset */
	int builtin_defaults;    /* 1 when defaults came from pf_builtin_defaults() */
	struct pf_service *svc;
	size_t nsvc, svccap;
	int have_master;         /* postconf -M was read: the service list is complete */
};

/* `name = value` lines (postconf -n/-d output or a main.cf: continuation lines
 * start with white space, `#` starts a comment only at the start of a line,
 * the last duplicate wins). Lines that are not settings become warnings. */
int pf_parse_main(struct kvlist *out, const char *file, const char *text, size_t len,
		  struct diag *d);
/* postconf -P: `service/type/name = value`. */
int pf_parse_overrides(struct pf_conf *pf, const char *file, const char *text, size_t len,
		       struct diag *d);
/* postconf -M output or a master.cf: services with their command and -o options. */
int pf_parse_master(struct pf_conf *pf, const char *file, const char *text, size_t len,
		    struct diag *d);
/* Fills pf->defaults with Postfix 3.7's defaults for the checked parameters. */
void pf_builtin_defaults(struct pf_conf *pf);
/* The unexpanded value: the service's -o, else main.cf, else the default; NULL
 * when the parameter is unknown. svc may be NULL (main.cf view). */
const char *pf_raw(const struct pf_conf *pf, const struct pf_service *svc, const char *name);
/* 1 when the value is set in main.cf or by the service's -o. */
int pf_is_explicit(const struct pf_conf *pf, const struct pf_service *svc, const char *name);
/* The value with $name, ${name?x}, ${name:x} and ${{a} <level {b} ? {x} : {y}}
 * expanded as Postfix does. The caller frees; "" for unknown names. */
char *pf_expand(const struct pf_conf *pf, const struct pf_service *svc, const char *name);
/* Expands an arbitrary string in the same way. */
char *pf_expand_str(const struct pf_conf *pf, const struct pf_service *svc, const char *s);
void pf_conf_free(struct pf_conf *pf);

/* ---- Dovecot (doveconf.c) ---- */

struct dc_node {
	char *key;     /* setting name, or section type ("passdb", "service") */
	char *value;   /* setting value; NULL for a section */
	char *name;    /* section name ("imap-login"), "" when none; NULL for settings */
	unsigned line;
	struct dc_node *kids;
	size_t nkids, cap;
};

struct dc_conf {
	struct dc_node root;   /* a section with key "" */
};

/* doveconf -n output (or a dovecot.conf without !include): settings, nested
 * `type [name] {` ... `}` sections, `#` comments. */
int dc_parse(struct dc_conf *dc, const char *file, const char *text, size_t len, struct diag *d);
/* The value of a setting directly inside n, or NULL. */
const char *dc_get(const struct dc_node *n, const char *key);
/* Sets (or replaces) a setting directly inside n. */
void dc_set(struct dc_node *n, const char *key, const char *value);
void dc_conf_free(struct dc_conf *dc);

/* ---- checks ---- */

void audit_postfix(const struct pf_conf *pf, struct audit_report *r);
void audit_dovecot(const struct dc_conf *dc, struct audit_report *r);

struct audit_mx_input {
	const struct config *cfg;   /* from config_load() */
	const struct pf_conf *pf;   /* may be NULL */
	const struct dc_conf *dc;   /* may be NULL */
	int syslog_daemon;          /* 1 when rsyslog/syslog-ng writes log files */
	int config_errors;          /* number of errors config_load reported */
};
void audit_mxjail(const struct audit_mx_input *in, struct audit_report *r);

/* Size in bits of the DH group in a PEM file (DH PARAMETERS or generic
 * parameters); -1 when the file cannot be read or holds no DH group. */
int audit_dh_bits(const char *path);

#endif
