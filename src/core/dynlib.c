/*
 * dynlib - loading a shared library and its functions (see dynlib.h).
 */
#include "core/dynlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

void *dynlib_open(const char *soname, const struct dynlib_fn *fn, size_t n, void *table, char *err,
		  size_t errlen)
{
	void *dl = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *e = dlerror();
		snprintf(err, errlen, "cannot load %s: %s", soname, e ? e : "not found");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		/* dlsym returns void *, which POSIX lets hold a function's address */
		void *p = dlsym(dl, fn[i].name);
		if (!p) {
			snprintf(err, errlen, "%s has no function %s", soname, fn[i].name);
			dlclose(dl);
			return NULL;
		}
		memcpy((char *)table + fn[i].off, &p, sizeof p);
	}
	return dl;
}

void dynlib_close(void *dl)
{
	if (dl)
		dlclose(dl);
}
