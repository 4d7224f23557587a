/*
 * dumpconf - `mxjail dumpconf [-c DIR] [--jail JAIL | --filter FILTER[k=v,...]]`:
 * prints the configuration as mxjail resolved it, as one JSON object.
 *
 * --filter: the filter definition (every regex with the file:line it came
 * from); --jail: one jail after layering and interpolation; neither: every
 * jail plus fail2ban.conf's [Definition] and mxjail.conf. Used to compare
 * with fail2ban's own readers and to see why a jail behaves as it does.
 * Errors go to stderr with file:line; the exit status is 1 when there were any.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/strbuf.h"

static void jstr(struct strbuf *b, const char *s)
{
	if (!s)
		strbuf_adds(b, "null");
	else
		strbuf_add_json(b, s, strlen(s));
}

static void jstrv(struct strbuf *b, char *const *v, size_t n)
{
	strbuf_addc(b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addc(b, ',');
		jstr(b, v[i]);
	}
	strbuf_addc(b, ']');
}

static void jsrc(struct strbuf *b, const char *key, const struct filter_src *s, size_t n)
{
	strbuf_addf(b, ",\"%s\":[", key);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addc(b, ',');
		jstr(b, s[i].text);
	}
	strbuf_addf(b, "],\"%s_src\":[", key);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addc(b, ',');
		if (s[i].file) {
			struct strbuf t = STRBUF_INIT;
			strbuf_addf(&t, "%s:%u", s[i].file, s[i].line);
			jstr(b, strbuf_str(&t));
			strbuf_free(&t);
		} else {
			strbuf_adds(b, "null");
		}
	}
	strbuf_addc(b, ']');
}

static void jkv(struct strbuf *b, const struct kvlist *kv)
{
	strbuf_addc(b, '{');
	for (size_t i = 0; i < kv->n; i++) {
		if (i)
			strbuf_addc(b, ',');
		jstr(b, kv->v[i].key);
		strbuf_addc(b, ':');
		jstr(b, kv->v[i].value);
	}
	strbuf_addc(b, '}');
}

static void jfilter(struct strbuf *b, const struct filter_def *f)
{
	strbuf_adds(b, "{\"name\":");
	jstr(b, f->name);
	strbuf_adds(b, ",\"file\":");
	jstr(b, f->file);
	strbuf_adds(b, ",\"prefregex\":");
	jstr(b, f->prefregex);
	jsrc(b, "failregex", f->failregex, f->nfailregex);
	jsrc(b, "ignoreregex", f->ignoreregex, f->nignoreregex);
	strbuf_addf(b, ",\"maxlines\":%u,\"datepattern\":", f->maxlines);
	jstrv(b, f->datepattern, f->ndatepattern);
	strbuf_adds(b, ",\"usedns\":");
	jstr(b, f->usedns);
	strbuf_adds(b, ",\"logtype\":");
	jstr(b, f->logtype);
	strbuf_adds(b, ",\"journalmatch\":");
	jstrv(b, f->journalmatch, f->njournalmatch);
	strbuf_adds(b, ",\"logtimezone\":");
	jstr(b, f->logtimezone);
	strbuf_adds(b, ",\"logencoding\":");
	jstr(b, f->logencoding);
	strbuf_addc(b, '}');
}

static void jjail(struct strbuf *b, const struct jail_conf *j)
{
	strbuf_adds(b, "{\"name\":");
	jstr(b, j->name);
	strbuf_addf(b, ",\"enabled\":%s,\"filter\":", j->enabled ? "true" : "false");
	jstr(b, j->filter);
	strbuf_adds(b, ",\"logpath\":");
	jstrv(b, j->logpath, j->nlogpath);
	strbuf_adds(b, ",\"action\":");
	jstrv(b, j->action, j->naction);
	strbuf_adds(b, ",\"backend\":");
	jstr(b, j->backend);
	strbuf_adds(b, ",\"file\":");
	jstr(b, j->file);
	strbuf_addf(b, ",\"line\":%u,\"opts\":", j->line);
	jkv(b, &j->opts);
	strbuf_addc(b, '}');
}

int cmd_dumpconf(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"jail", required_argument, NULL, 'j'},
		{"filter", required_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	const char *dir = MXJAIL_SYSCONFDIR, *jail = NULL, *filter = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		case 'j': jail = optarg; break;
		case 'f': filter = optarg; break;
		default:
			fprintf(stderr,
				"usage: mxjail dumpconf [-c DIR] [--jail JAIL | --filter FILTER[k=v,...]]\n");
			return 2;
		}
	}
	if ((jail && filter) || optind != argc) {
		fprintf(stderr,
			"usage: mxjail dumpconf [-c DIR] [--jail JAIL | --filter FILTER[k=v,...]]\n");
		return 2;
	}
	struct diag d = DIAG_INIT;
	struct strbuf b = STRBUF_INIT;
	int status = 0;
	if (filter) {
		struct filter_def def;
		if (config_load_filter(dir, filter, NULL, &def, &d) == 0)
			jfilter(&b, &def);
		filter_def_free(&def);
	} else {
		struct config cfg;
		config_load(dir, &cfg, &d);
		if (jail) {
			size_t i;
			for (i = 0; i < cfg.njails; i++)
				if (strcmp(cfg.jails[i].name, jail) == 0)
					break;
			if (i < cfg.njails)
				jjail(&b, &cfg.jails[i]);
			else
				diag_error(&d, NULL, 0, "no jail [%s] in %s", jail, dir);
		} else {
			strbuf_adds(&b, "{\"dir\":");
			jstr(&b, cfg.dir);
			strbuf_adds(&b, ",\"jails\":[");
			for (size_t i = 0; i < cfg.njails; i++) {
				if (i)
					strbuf_addc(&b, ',');
				jjail(&b, &cfg.jails[i]);
			}
			strbuf_adds(&b, "],\"general\":");
			jkv(&b, &cfg.general);
			strbuf_adds(&b, ",\"mxjail\":");
			jkv(&b, &cfg.mxjail);
			strbuf_addc(&b, '}');
		}
		config_free(&cfg);
	}
	if (b.len)
		printf("%s\n", strbuf_str(&b));
	diag_print(&d, stderr);
	if (d.nerrors)
		status = 1;
	diag_clear(&d);
	strbuf_free(&b);
	return status;
}
