/*
 * report_geo - countries and autonomous systems of addresses, from
 * MaxMind-format (.mmdb) databases through libmaxminddb.
 *
 * Debian ships no such database by default, so this is optional: the report
 * gets a country column only when a database is given with --geoip or found
 * in /usr/share/GeoIP or /var/lib/GeoIP. A country database (GeoLite2,
 * DB-IP, ip-location-db style: country.iso_code, or country_code) and an ASN
 * database (autonomous_system_number/_organization) can both be used; a file
 * that holds both (some free databases do) serves both.
 *
 * DIAGNOSTICS: report_geo_open() fills err; lookups never fail loudly.
 */
#include <dirent.h>
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "report/report.h"

struct report_geo {
	MMDB_s db[2];
	int open[2];
	char *name;
};

static const char *const geo_dirs[] = {"/usr/share/GeoIP", "/var/lib/GeoIP"};

static int open_one(struct report_geo *g, int slot, const char *path, char *err, size_t errlen)
{
	int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->db[slot]);
	if (rc != MMDB_SUCCESS) {
		snprintf(err, errlen, "%s: %s", path, MMDB_strerror(rc));
		return -1;
	}
	g->open[slot] = 1;
	return 0;
}

static int is_asn_db(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	return strcasestr(b, "asn") != NULL;
}

struct report_geo *report_geo_open(const char *path, char *err, size_t errlen)
{
	struct report_geo *g = xcalloc(1, sizeof *g);
	struct strbuf names = STRBUF_INIT;
	err[0] = '\0';
	if (path) {
		if (open_one(g, 0, path, err, errlen) < 0) {
			free(g);
			return NULL;
		}
		strbuf_adds(&names, path);
	} else {
		for (size_t d = 0; d < sizeof geo_dirs / sizeof geo_dirs[0]; d++) {
			DIR *dir = opendir(geo_dirs[d]);
			if (!dir)
				continue;
			struct dirent *e;
			char *found[2] = {NULL, NULL};
			while ((e = readdir(dir))) {
				size_t n = strlen(e->d_name);
				if (n < 6 || strcmp(e->d_name + n - 5, ".mmdb") != 0)
					continue;
				int slot = is_asn_db(e->d_name);
				/* the alphabetically first of each kind, so runs agree */
				if (!found[slot] || strcmp(e->d_name, found[slot]) < 0) {
					free(found[slot]);
					found[slot] = xstrdup(e->d_name);
				}
			}
			closedir(dir);
			for (int s = 0; s < 2; s++) {
				if (!found[s] || g->open[s])
					continue;
				char *full = xasprintf("%s/%s", geo_dirs[d], found[s]);
				char e2[256];
				if (open_one(g, s, full, e2, sizeof e2) == 0) {
					if (names.len)
						strbuf_adds(&names, ", ");
					strbuf_adds(&names, full);
				}
				free(full);
			}
			free(found[0]);
			free(found[1]);
		}
		if (!g->open[0] && !g->open[1]) {
			strbuf_free(&names);
			free(g);
			return NULL;
		}
	}
	g->name = strbuf_detach(&names);
	return g;
}

struct report_geo *report_geo_close(struct report_geo *g)
{
	if (!g)
		return NULL;
	for (int s = 0; s < 2; s++)
		if (g->open[s])
			MMDB_close(&g->db[s]);
	free(g->name);
	free(g);
	return NULL;
}

const char *report_geo_name(const struct report_geo *g)
{
	return g && g->name ? g->name : "";
}

static int get_string(MMDB_entry_s *e, char *buf, size_t len, const char *const *path)
{
	MMDB_entry_data_s d;
	if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING || len == 0)
		return 0;
	size_t n = d.data_size < len - 1 ? d.data_size : len - 1;
	memcpy(buf, d.utf8_string, n);
	buf[n] = '\0';
	return n > 0;
}

static unsigned get_uint(MMDB_entry_s *e, const char *const *path)
{
	MMDB_entry_data_s d;
	if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data)
		return 0;
	switch (d.type) {
	case MMDB_DATA_TYPE_UINT16: return d.uint16;
	case MMDB_DATA_TYPE_UINT32: return d.uint32;
	case MMDB_DATA_TYPE_INT32: return d.int32 > 0 ? (unsigned)d.int32 : 0;
	default: return 0;
	}
}

int report_geo_lookup(struct report_geo *g, const char *addr, char *cc, size_t cclen,
		      unsigned *asn, char *org, size_t orglen)
{
	static const char *const p_cc[] = {"country", "iso_code", NULL};
	static const char *const p_cc2[] = {"registered_country", "iso_code", NULL};
	static const char *const p_cc3[] = {"country_code", NULL};
	static const char *const p_asn[] = {"autonomous_system_number", NULL};
	static const char *const p_org[] = {"autonomous_system_organization", NULL};
	static const char *const p_org2[] = {"as_organization", NULL};
	if (cclen)
		cc[0] = '\0';
	if (orglen)
		org[0] = '\0';
	*asn = 0;
	if (!g)
		return -1;
	int found = 0;
	for (int s = 0; s < 2; s++) {
		if (!g->open[s])
			continue;
		int gai = 0, mmerr = 0;
		MMDB_lookup_result_s res = MMDB_lookup_string(&g->db[s], addr, &gai, &mmerr);
		if (gai != 0 || mmerr != MMDB_SUCCESS || !res.found_entry)
			continue;
		found = 1;
		if (!cc[0] && !get_string(&res.entry, cc, cclen, p_cc) &&
		    !get_string(&res.entry, cc, cclen, p_cc2))
			get_string(&res.entry, cc, cclen, p_cc3);
		if (!*asn) {
			*asn = get_uint(&res.entry, p_asn);
			if (!get_string(&res.entry, org, orglen, p_org))
				get_string(&res.entry, org, orglen, p_org2);
		}
	}
	return found ? 0 : -1;
}
