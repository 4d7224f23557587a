/*
 * test_jail - failure counting: maxretry, findtime rate rescale, evidence
 * lines against a model (in memory, in a spool file, through compactions),
 * maxtracked eviction under address spraying, ids in every form (IPv4
 * ids are stored as bytes), bantime increments and time strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "jails/jail.h"

static struct jail_params params(unsigned maxretry, double findtime)
{
	struct jail_params p = {0};
	p.maxretry = maxretry;
	p.findtime = findtime;
	p.bantime = 600;
	p.maxmatches = 3;
	p.maxtracked = 1000;
	return p;
}

static void maxretry_bans(void **state)
{
	(void)state;
	struct jail_params p = params(3, 600);
	struct jail *j = jail_new(&p);
	struct jail_ban b;
	const char *l1[] = {"line 1"}, *l2[] = {"line 2"}, *l3[] = {"line 3"}, *l4[] = {"line 4"};
	assert_int_equal(jail_add_failure(j, "192.0.2.1", 1000, l1, 1, &b), 0);
	assert_int_equal(jail_add_failure(j, "192.0.2.2", 1001, l1, 1, &b), 0);
	assert_int_equal(jail_add_failure(j, "192.0.2.1", 1002, l2, 1, &b), 0);
	assert_int_equal(jail_retry(j, "192.0.2.1"), 2);
	/* maxmatches = 3 keeps the last three lines */
	assert_int_equal(jail_add_failure(j, "192.0.2.1", 1003, l3, 1, &b), 1);
	assert_string_equal(b.id, "192.0.2.1");
	assert_int_equal(b.failures, 3);
	assert_int_equal(b.nlines, 3);
	assert_string_equal(b.lines[0], "line 1");
	assert_string_equal(b.lines[2], "line 3");
	jail_ban_clear(&b);
	assert_int_equal(jail_retry(j, "192.0.2.1"), 0);
	assert_int_equal(jail_tracked(j), 1);
	(void)l4;
	jail_free(j);
}

/* IPv4 ids in canonical form are kept as bytes, all others as text: each id
 * must still be its own record and come back exactly as it was given. */
static void ids_in_every_form(void **state)
{
	(void)state;
	static const char *ids[] = {
		"192.0.2.1", "0.0.0.0", "255.255.255.255", "10.0.0.10",
		"010.0.0.10", "10.0.0.010", "192.0.2.256", "192.0.2", "192.0.2.1.5", "1.2.3.4 ",
		"1..2.3", "1.2.3.", "1234.1.1.1", "192.0.2.00", "2001:db8::1", "::ffff:192.0.2.1",
		"host.example.org", "", "user@example.org",
	};
	size_t n = sizeof ids / sizeof ids[0];
	struct jail_params p = params(3, 600);
	struct jail *j = jail_new(&p);
	struct jail_ban b;
	const char *l[] = {"line"};
	for (size_t i = 0; i < n; i++)
		assert_int_equal(jail_add_failure(j, ids[i], 1000, l, 1, &b), 0);
	assert_int_equal(jail_tracked(j), n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(jail_retry(j, ids[i]), 1);
	/* forgetting every other one keeps the rest findable (backward-shift delete) */
	for (size_t i = 0; i < n; i += 2)
		jail_forget(j, ids[i]);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(jail_retry(j, ids[i]), i % 2 ? 1u : 0u);
	for (size_t i = 1; i < n; i += 2) {
		assert_int_equal(jail_add_failure(j, ids[i], 1001, l, 1, &b), 0);
		assert_int_equal(jail_add_failure(j, ids[i], 1002, l, 1, &b), 1);
		assert_string_equal(b.id, ids[i]);
		jail_ban_clear(&b);
	}
	assert_int_equal(jail_tracked(j), 0);
	/* many of both kinds through growth and deletes */
	char id[64];
	for (unsigned i = 0; i < 5000; i++) {
		if (i % 3)
			snprintf(id, sizeof id, "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		else
			snprintf(id, sizeof id, "2001:db8::%x", i);
		assert_int_equal(jail_add_failure(j, id, 1000, l, 1, &b), 0);
	}
	assert_int_equal(jail_tracked(j), 1000); /* maxtracked */
	for (unsigned i = 4000; i < 5000; i++) {
		if (i % 3)
			snprintf(id, sizeof id, "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		else
			snprintf(id, sizeof id, "2001:db8::%x", i);
		assert_int_equal(jail_retry(j, id), 1);
		assert_int_equal(jail_add_failure(j, id, 1001, l, 1, &b), 0);
		assert_int_equal(jail_add_failure(j, id, 1002, l, 1, &b), 1);
		assert_string_equal(b.id, id);
		jail_ban_clear(&b);
	}
	assert_int_equal(jail_tracked(j), 0);
	jail_free(j);
}

static void findtime_is_a_rate(void **state)
{
	(void)state;
	struct jail_params p = params(3, 100);
	struct jail *j = jail_new(&p);
	struct jail_ban b;
	/* two failures 200 s apart: the count is rescaled to the rate over findtime */
	assert_int_equal(jail_add_failure(j, "a", 0, NULL, 0, &b), 0);
	assert_int_equal(jail_add_failure(j, "a", 200, NULL, 0, &b), 0);
	/* round(1 / 200 * 100) = 0 (banker's rounding in Python: round(0.5) = 0) + 1 */
	assert_true(jail_retry(j, "a") <= 2);
	assert_int_equal(jail_add_failure(j, "a", 201, NULL, 0, &b), 0);
	assert_int_equal(jail_add_failure(j, "a", 202, NULL, 0, &b), 1);
	jail_ban_clear(&b);
	/* expire drops stale records */
	jail_add_failure(j, "b", 300, NULL, 0, &b);
	jail_expire(j, 500);
	assert_int_equal(jail_tracked(j), 0);
	jail_free(j);
}

static void spraying_is_bounded(void **state)
{
	(void)state;
	struct jail_params p = params(5, 600);
	p.maxtracked = 100;
	struct jail *j = jail_new(&p);
	struct jail_ban b;
	char id[64];
	/* the real attacker keeps failing while 10,000 sprayed ids pass by */
	for (int i = 0; i < 10000; i++) {
		snprintf(id, sizeof id, "198.51.%d.%d", i / 250, i % 250);
		jail_add_failure(j, id, 1000 + i * 0.001, NULL, 0, &b);
		if (i % 50 == 0 && jail_add_failure(j, "203.0.113.9", 1000 + i * 0.001, NULL, 0, &b)) {
			jail_ban_clear(&b);
			break;
		}
	}
	assert_true(jail_tracked(j) <= 100);
	assert_true(jail_evictions(j) > 0);
	jail_free(j);
}

/* A model of the evidence: per id the newest maxmatches lines, in memory. */
#define MODEL_IDS 200
#define MODEL_CAP 8
struct model {
	char *ring[MODEL_CAP];
	unsigned n, retry;
};

static uint64_t rnd_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void model_reset(struct model *m)
{
	for (unsigned i = 0; i < m->n; i++)
		free(m->ring[i]);
	memset(m, 0, sizeof *m);
}

static void model_push(struct model *m, unsigned cap, const char *line)
{
	if (cap == 0)
		return;
	if (m->n == cap) {
		free(m->ring[0]);
		memmove(m->ring, m->ring + 1, (cap - 1) * sizeof *m->ring);
		m->n--;
	}
	m->ring[m->n++] = strdup(line);
}

/* Random failures (1-3 lines each, some long) for a few hundred ids, with
 * bans, forgets and a maxmatches change: every ban's lines must be exactly the
 * model's, while the spool is compacted many times and stays bounded. */
static const char default_dir[] = "(default)";

static void evidence_run(const char *dir)
{
	struct jail_params p = params(40, 1e9);
	p.maxmatches = 5;
	struct jail *j = jail_new(&p);
	if (dir != default_dir)
		jail_spool_dir(j, dir);
	static struct model m[MODEL_IDS];
	memset(m, 0, sizeof m);
	uint64_t x = 88172645463325252ull;
	unsigned long long peak = 0, last = 0;
	unsigned bans = 0, compactions = 0;
	char id[32], text[3][700];
	for (int i = 0; i < 60000; i++) {
		unsigned k = (unsigned)(rnd_next(&x) % MODEL_IDS);
		snprintf(id, sizeof id, "198.51.100.%u", k);
		size_t nl = 1 + rnd_next(&x) % 3;
		const char *lines[3];
		for (size_t l = 0; l < nl; l++) {
			int len = (int)(rnd_next(&x) % (l == 0 && i % 97 == 0 ? 590 : 150));
			snprintf(text[l], sizeof text[l], "%d.%zu %s %.*s", i, l, id, len,
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
			lines[l] = text[l];
			model_push(&m[k], p.maxmatches, text[l]);
		}
		m[k].retry++;
		struct jail_ban b;
		int r = jail_add_failure(j, id, 1000 + i * 0.001, lines, nl, &b);
		assert_int_equal(r, m[k].retry >= p.maxretry);
		if (r) {
			assert_int_equal(b.nlines, m[k].n);
			for (unsigned l = 0; l < m[k].n; l++)
				assert_string_equal(b.lines[l], m[k].ring[l]);
			jail_ban_clear(&b);
			model_reset(&m[k]);
			bans++;
		}
		if (i % 1000 == 999) {
			snprintf(id, sizeof id, "198.51.100.%u", (unsigned)(rnd_next(&x) % MODEL_IDS));
			jail_forget(j, id);
			model_reset(&m[atoi(id + 11)]);
		}
		if (i == 45000) {
			/* a new maxmatches starts every record's evidence afresh */
			p.maxmatches = 3;
			jail_set_params(j, &p);
			for (unsigned l = 0; l < MODEL_IDS; l++) {
				unsigned retry = m[l].retry;
				model_reset(&m[l]);
				m[l].retry = retry;
			}
		}
		unsigned long long now = jail_spool_bytes(j);
		compactions += now < last;
		last = now;
		if (now > peak)
			peak = now;
	}
	assert_true(bans > 1000);
	assert_true(compactions >= 3);
	/* written: ~15 MB; live: at most 200 x 5 lines of < 700 bytes */
	assert_true(peak < 5u << 20);
	print_message("%s: %u bans, %u compactions, spool peak %llu bytes\n",
		      dir ? dir : "memory", bans, compactions, peak);
	for (unsigned l = 0; l < MODEL_IDS; l++)
		model_reset(&m[l]);
	jail_free(j);
}

static void evidence_in_memory(void **state)
{
	(void)state;
	evidence_run(NULL);
}

static void evidence_default_spool(void **state)
{
	(void)state;
	evidence_run(default_dir); /* $TMPDIR or /tmp */
}

static void evidence_on_disk(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_jail.XXXXXX";
	assert_non_null(mkdtemp(dir));
	evidence_run(dir);
	/* the spool file was never linked into the directory */
	assert_int_equal(rmdir(dir), 0);
	/* a directory that does not exist: the evidence stays in memory */
	evidence_run("/nonexistent/mxjail-test");
}

static void increments(void **state)
{
	(void)state;
	struct jail_params p = params(3, 600);
	char err[256];
	assert_int_equal(jail_incr_parse(&p.incr, "true", "2", NULL, NULL, "1d", NULL, NULL, err,
					 sizeof err),
			 0);
	assert_true(jail_bantime(&p, 0, 0) == 600 * 2);
	assert_true(jail_bantime(&p, 1, 0) == 600 * 4);
	assert_true(jail_bantime(&p, 30, 0) == 86400);
	jail_incr_free(&p.incr);
	assert_int_equal(jail_incr_parse(&p.incr, "true", NULL, NULL, "1 5 30 60", NULL, "10m", NULL,
					 err, sizeof err),
			 0);
	assert_true(jail_bantime(&p, 1, 0) == 600 * 5);
	assert_true(jail_bantime(&p, 9, 0) == 600 * 60);
	assert_true(jail_bantime(&p, 0, 0.5) == 600 + 300);
	jail_incr_free(&p.incr);
	assert_int_equal(jail_incr_parse(&p.incr, "true", NULL,
					 "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor",
					 NULL, NULL, NULL, NULL, err, sizeof err),
			 0);
	assert_int_equal(jail_incr_parse(&p.incr, "true", NULL, "ban.Time * math.exp(ban.Count)",
					 NULL, NULL, NULL, NULL, err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "bantime.formula"));
	p.bantime = -1;
	assert_true(jail_bantime(&p, 3, 0) < 0);
}

static void time_strings(void **state)
{
	(void)state;
	double t;
	assert_int_equal(jail_parse_time("600", &t), 0);
	assert_true(t == 600);
	assert_int_equal(jail_parse_time("10m", &t), 0);
	assert_true(t == 600);
	assert_int_equal(jail_parse_time("1d12h30m", &t), 0);
	assert_true(t == 86400 + 12 * 3600 + 1800);
	assert_int_equal(jail_parse_time("1h 30m", &t), 0);
	assert_true(t == 5400);
	assert_int_equal(jail_parse_time("-1", &t), 0);
	assert_true(t == -1);
	assert_int_equal(jail_parse_time("1mo", &t), 0);
	assert_true(t == 31557600.0 / 12);
	assert_int_equal(jail_parse_time("1year-6mo", &t), 0);
	assert_true(t == 31557600.0 / 2);
	assert_int_equal(jail_parse_time("2w", &t), 0);
	assert_true(t == 1209600);
	assert_int_equal(jail_parse_time("", &t), -1);
	assert_int_equal(jail_parse_time("10 parsecs", &t), -1);
	assert_int_equal(jail_parse_time("abc", &t), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(maxretry_bans),
		cmocka_unit_test(ids_in_every_form),
		cmocka_unit_test(findtime_is_a_rate),
		cmocka_unit_test(spraying_is_bounded),
		cmocka_unit_test(evidence_in_memory),
		cmocka_unit_test(evidence_default_spool),
		cmocka_unit_test(evidence_on_disk),
		cmocka_unit_test(increments),
		cmocka_unit_test(time_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
