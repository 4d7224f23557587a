/*
 * fuzz_report - libFuzzer target for the report module's readers of log
 * text (report/report_kind.c: kinds, services, user names, to=/from=
 * fields; report/report.c: ban notices, policy lines) and its tables.
 *
 * The input is split into lines; each line is classified, searched for a
 * user name and fields, scanned for ban notices and counted as a failure of
 * the address-looking token after "from " (or a fixed one), with a time
 * taken from the line's first bytes. Tables are capped at 64 keys so the
 * untracked paths run too. The whole input is also counted as the policy
 * engine's listings. Then the report is finished and written in all
 * three formats; every found user name must be shorter than its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "report/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct report_opts o = {.top = 5, .max_keys = 64, .since = 1000};
	struct report *r = report_new(&o);
	size_t jails[2] = {report_jail(r, "sshd"), report_jail(r, "postfix")};
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char user[64] = "", field[64], id[80];
		size_t k = report_classify(p, len);
		if (k >= report_nkinds)
			abort();
		(void)report_service(p, len, k);
		if (report_find_user(p, len, user, sizeof user) && strlen(user) >= sizeof user)
			abort();
		if (report_find_field(p, len, "to", field, sizeof field) &&
		    strlen(field) >= sizeof field)
			abort();
		double t = len ? 900.0 + (unsigned char)p[0] * 10.0 : -1;
		report_scan_line(r, p, len, t);
		const char *f = len > 5 ? memmem(p, len, "from ", 5) : NULL;
		size_t n = 0;
		if (f) {
			f += 5;
			while (f + n < p + len && n < sizeof id - 1 && f[n] != ' ')
				n++;
			memcpy(id, f, n);
		}
		id[n] = '\0';
		if (!n)
			strcpy(id, "192.0.2.1");
		report_failure(r, jails, 1 + (len & 1), id, t, p, len, len % 3 ? NULL : user);
		if (len % 5 == 0)
			report_estimate_ban(r, jails[0], id, t, len % 2 ? 600 : -1);
		p += len + 1;
	}
	/* the input as the policy engine's listings (NUL-terminated copy) */
	char *text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	struct report_policy_state ps;
	report_policy_count(text, text, &ps);
	if (ps.triplets != ps.passed + ps.waiting || ps.whitelisted > ps.clients)
		abort();
	report_policy_state(r, &ps);
	free(text);
	report_finish(r, NULL, 2000000000.0);
	struct strbuf out = STRBUF_INIT;
	report_format_text(r, &out);
	report_format_json(r, &out);
	report_format_html(r, &out);
	strbuf_free(&out);
	report_free(r);
	return 0;
}
