/*
 * fuzz_config - libFuzzer target for the configuration reader: the input is
 * parsed as one INI file in memory, every option is interpolated (%(x)s),
 * [Definition] goes through <tag> substitution and the first line is read
 * as a filter spec and as an action list. Nothing may crash, hang or grow
 * without bound.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/interp.h"
#include "core/diag.h"
#include "core/kvlist.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct diag d = DIAG_INIT;
	struct ini ini = {0};
	char *buf = strndup((const char *)data, size), **items = NULL, *name = NULL, err[256];
	ini_parse(&ini, "fuzz.conf", (const char *)data, size, &d);
	for (size_t i = 0; i < ini.n; i++)
		for (size_t k = 0; k < ini.sects[i].n; k++) {
			char *v = NULL;
			struct interp_err e;
			interp_get(&ini, ini.sects[i].name, ini.sects[i].opts[k].key, NULL, 0, &v, NULL, &e);
			free(v);
		}
	struct ini_sect *def = ini_sect_find(&ini, "Definition");
	struct interp_err e;
	if (def)
		interp_tags(def, NULL, NULL, NULL, &e);
	buf[strcspn(buf, "\n")] = '\0';
	struct kvlist opts = KVLIST_INIT;
	if (config_spec_parse(buf, &name, &opts, err, sizeof err) == 0)
		free(name);
	size_t n = 0;
	if (config_spec_split(buf, &items, &n, err, sizeof err) == 0)
		for (size_t i = 0; i < n; i++)
			free(items[i]);
	free(items);
	kvlist_free(&opts);
	free(buf);
	ini_free(&ini);
	diag_clear(&d);
	return 0;
}
