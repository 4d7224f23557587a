/*
 * dynlib - a shared library opened at run time, with a table of its functions.
 *
 * Libraries that only some configurations need (the systemd journal, the
 * nftables backend) are loaded by the part that uses them, so a daemon that
 * does not need them does not map them: each costs hundreds of KiB of
 * resident pages with the libraries it pulls in.
 *
 * INTERFACE
 *	The caller declares a struct of typed function pointers and a list of
 *	{symbol name, offset of the member}. dynlib_open() loads the library
 *	(RTLD_NOW) and fills every member; NULL with a message in err when the
 *	library or a symbol is missing (nothing stays loaded then).
 *	dynlib_close() unloads (NULL is fine).
 */
#ifndef MXJAIL_CORE_DYNLIB_H
#define MXJAIL_CORE_DYNLIB_H

#include <stddef.h>

struct dynlib_fn {
	const char *name;
	size_t off; /* offsetof(the table, its member) */
};

void *dynlib_open(const char *soname, const struct dynlib_fn *fn, size_t n, void *table, char *err,
		  size_t errlen);
void dynlib_close(void *dl);

#endif
