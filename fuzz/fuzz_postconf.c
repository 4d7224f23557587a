/*
 * fuzz_postconf - libFuzzer target for audit's configuration readers: the
 * input is read as `postconf -n` (main.cf) text, as `postconf -P` and
 * `postconf -M` output and as `doveconf -n` output; every setting is expanded
 * ($name, ${name?x}, ${{a} <level {b} ? {x} : {y}}) and the Postfix and
 * Dovecot checks run over the result. Nothing may crash, hang or grow
 * without bound.
 */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/diag.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *text = (const char *)data;
	struct diag d = DIAG_INIT;
	struct pf_conf pf = {0};
	pf_builtin_defaults(&pf);
	pf_parse_main(&pf.main, "fuzz.n", text, size, &d);
	pf_parse_overrides(&pf, "fuzz.P", text, size, &d);
	pf_parse_master(&pf, "fuzz.M", text, size, &d);
	for (size_t i = 0; i < pf.main.n; i++)
		free(pf_expand(&pf, NULL, pf.main.v[i].key));
	struct audit_report r = {0};
	audit_postfix(&pf, &r);
	struct dc_conf dc = {0};
	dc_parse(&dc, "fuzz.conf", text, size, &d);
	audit_dovecot(&dc, &r);
	audit_report_free(&r);
	dc_conf_free(&dc);
	pf_conf_free(&pf);
	diag_clear(&d);
	return 0;
}
