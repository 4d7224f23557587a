/*
 * sdlib - loading libsystemd on demand (see sdlib.h for why).
 */
#include "core/sdlib.h"
#include "core/dynlib.h"

#include <string.h>

#define SDLIB_FN(name) {"sd_" #name, offsetof(struct sdlib, name)},
static const struct dynlib_fn sdlib_fns[] = {SDLIB_FUNCTIONS(SDLIB_FN)};
#undef SDLIB_FN

int sdlib_open(struct sdlib *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	s->dl = dynlib_open("libsystemd.so.0", sdlib_fns, sizeof sdlib_fns / sizeof sdlib_fns[0], s,
			    err, errlen);
	return s->dl ? 0 : -1;
}

void sdlib_close(struct sdlib *s)
{
	dynlib_close(s->dl);
	memset(s, 0, sizeof *s);
}
