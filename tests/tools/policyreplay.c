/*
 * policyreplay - runs recorded RCPT requests through the policy engine with
 * the time taken from each record, and prints one "action=..." line each.
 * Used by tests/e2e/test_policy_postgrey.py to compare greylisting with
 * postgrey's own answers to the same sequence (postgrey takes the time from
 * its policy_test_time attribute).
 *
 *   policyreplay [-o SECTION.KEY=VALUE]... FILE
 *
 * FILE: one request per line, tab-separated: time, client_address,
 * client_name, sender, recipient, instance. Sections: policy, greylist,
 * ratelimit, spoof. No store: memory only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kvlist.h"
#include "core/strbuf.h"
#include "policy/policy.h"

int main(int argc, char **argv)
{
	struct kvlist sec[4] = { KVLIST_INIT, KVLIST_INIT, KVLIST_INIT, KVLIST_INIT };
	static const char *const names[4] = { "policy", "greylist", "ratelimit", "spoof" };
	int c;
	while ((c = getopt(argc, argv, "o:")) != -1) {
		char *dot = c == 'o' ? strchr(optarg, '.') : NULL;
		char *eq = dot ? strchr(dot, '=') : NULL;
		int i;
		if (!eq) {
			fprintf(stderr, "usage: policyreplay [-o SECTION.KEY=VALUE]... FILE\n");
			return 2;
		}
		*dot = *eq = '\0';
		for (i = 0; i < 4 && strcmp(optarg, names[i]) != 0; i++)
			;
		if (i == 4) {
			fprintf(stderr, "policyreplay: no section %s\n", optarg);
			return 2;
		}
		kvlist_set(&sec[i], dot + 1, eq + 1);
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: policyreplay [-o SECTION.KEY=VALUE]... FILE\n");
		return 2;
	}
	FILE *f = fopen(argv[optind], "r");
	if (!f) {
		perror(argv[optind]);
		return 1;
	}
	char err[512];
	struct policy *p = policy_new(&sec[0], &sec[1], &sec[2], &sec[3], NULL, NULL, 0, err,
				      sizeof(err));
	if (!p) {
		fprintf(stderr, "policyreplay: %s\n", err);
		return 1;
	}
	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	struct strbuf req = STRBUF_INIT, out = STRBUF_INIT;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	policy_req_init(&r);
	while (getline(&line, &cap, f) > 0) {
		char *fld[6];
		char *s = line;
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		for (int i = 0; i < 6; i++) {
			fld[i] = s;
			char *t = s ? strchr(s, '\t') : NULL;
			if (t)
				*t = '\0';
			s = t ? t + 1 : NULL;
		}
		if (!fld[5]) {
			fprintf(stderr, "policyreplay: line %ld: expected 6 tab-separated fields\n", lineno);
			return 1;
		}
		strbuf_reset(&req);
		strbuf_addf(&req, "request=smtpd_access_policy\nprotocol_state=RCPT\n"
			    "protocol_name=ESMTP\nclient_address=%s\nclient_name=%s\nsender=%s\n"
			    "recipient=%s\ninstance=%s\n\n", fld[1], fld[2], fld[3], fld[4], fld[5]);
		if (policy_parser_feed(pp, req.s, req.len, &r, err, sizeof(err)) <= 0) {
			fprintf(stderr, "policyreplay: line %ld: %s\n", lineno, err);
			return 1;
		}
		strbuf_reset(&out);
		policy_eval(p, &r, atof(fld[0]), &out);
		printf("action=%s\n", out.s);
	}
	free(line);
	fclose(f);
	policy_req_free(&r);
	policy_parser_free(pp);
	strbuf_free(&req);
	strbuf_free(&out);
	policy_free(p);
	for (int i = 0; i < 4; i++)
		kvlist_free(&sec[i]);
	return 0;
}
