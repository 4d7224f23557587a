/*
 * policybench - in-process cost of the policy engine per request, without
 * sockets: parse + policy_eval() on requests with the full attribute set
 * Postfix 3.7 sends at RCPT, in policy_load's 60:30:10 mix (new triplet :
 * retry of an earlier one : whitelisted client), with greylisting (Debian's
 * whitelists when MXJAIL_SRCDIR is set), two rate limits and a ban check,
 * and the write-behind flushed once per simulated second: by default to the
 * engine's state file (policy_open: the flush only serialises, a writer
 * thread commits), with --sync straight into a store on this thread (the
 * older design, for comparison), with --no-store nowhere.
 *
 *   policybench [-n requests] [-r rate_per_s] [-f flush_interval_s] [--sync|--no-store]
 *
 * Prints one line per phase and a final "JSON {...}" line for scripts.
 * Time is simulated (requests arrive at `rate` per second), so the numbers
 * are CPU cost, not latency under load; bench/policy.sh measures the service.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/kvlist.h"
#include "core/strbuf.h"
#include "net/addr.h"
#include "policy/policy.h"
#include "store/store.h"

static int never_banned(void *arg, const struct addr *a, double now)
{
	(void)arg;
	(void)now;
	/* a lookup's worth of work: a real daemon probes a hash table here */
	return a->family == 4 && a->a[0] == 203 && a->a[1] == 0 && a->a[2] == 113;
}

/* CPU time of this thread: what a flush costs the loop, whoever else runs */
static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long rng = 88172645463325252ULL;
static unsigned long long xr(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct trip {
	unsigned ip, snd, rcpt;
	double t;
};

static int build(char *buf, size_t len, unsigned ip, unsigned snd, unsigned rcpt, unsigned long id)
{
	return snprintf(buf, len,
			"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
			"client_address=%u.%u.%u.%u\nclient_name=unknown\nclient_port=%lu\n"
			"reverse_client_name=mx%u.example.net\nserver_address=192.0.2.25\n"
			"server_port=25\nhelo_name=mx%u.example.net\nsender=user%u@sender%u.example\n"
			"recipient=user%u@example.com\nrecipient_count=0\nqueue_id=\nstress=\n"
			"size=0\netrn_domain=\nsasl_method=\nsasl_username=\nsasl_sender=\n"
			"ccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\n"
			"encryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\n"
			"encryption_keysize=256\npolicy_context=\ncompatibility_level=3.6\n"
			"mail_version=3.7.11\ninstance=%lx.%lx.0\n\n",
			ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, 40000 + id % 20000, ip, ip,
			snd, snd % 997, rcpt, id, id);
}

int main(int argc, char **argv)
{
	long n = 300000;
	double rate = 5000, every = 1;
	int use_store = 1;
	int sync_store = 0;
	static const struct option lo[] = { { "no-store", 0, 0, 's' }, { "sync", 0, 0, 'y' },
					    { 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "n:r:f:", lo, NULL)) != -1) {
		if (c == 'n')
			n = atol(optarg);
		else if (c == 'r')
			rate = atof(optarg);
		else if (c == 'f')
			every = atof(optarg);
		else if (c == 's')
			use_store = 0;
		else if (c == 'y')
			sync_store = 1;
		else {
			fprintf(stderr, "usage: policybench [-n requests] [-r rate] [-f flush_every_s] [--sync|--no-store]\n");
			return 2;
		}
	}
	if (n < 1000 || rate <= 0 || every <= 0) {
		fprintf(stderr, "policybench: -n >= 1000, -r > 0, -f > 0\n");
		return 2;
	}

	char dir[] = "/tmp/policybench-XXXXXX", wl[512], path[600], msg[256];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(wl, sizeof(wl), "%s/whitelist_clients.local", dir);
	FILE *f = fopen(wl, "w");
	if (!f) {
		perror(wl);
		return 1;
	}
	fputs("198.51.100.0/24\n", f);
	fclose(f);

	struct kvlist kp = KVLIST_INIT, kg = KVLIST_INIT, kr = KVLIST_INIT, ks = KVLIST_INIT;
	const char *src = getenv("MXJAIL_SRCDIR");
	char files[1400];
	snprintf(files, sizeof(files), "%s%s%s %s", src ? src : "",
		 src ? "/tests/fixtures/postgrey/whitelist_clients" : "", src ? "" : "", wl);
	kvlist_set(&kp, "checks", "banned spoof greylist ratelimit");
	kvlist_set(&kg, "delay", "2");
	kvlist_set(&kg, "whitelist_clients", files);
	kvlist_set(&kg, "whitelist_recipients", src ? "" : "/nonexistent");
	if (src) {
		snprintf(files, sizeof(files), "%s/tests/fixtures/postgrey/whitelist_recipients", src);
		kvlist_set(&kg, "whitelist_recipients", files);
	}
	kvlist_set(&kr, "clients", "client_address: 1000 requests / 1m, 20000 / 1h");
	kvlist_set(&kr, "domains", "recipient_domain: 100000000 requests / 1h");
	kvlist_set(&ks, "domains", "example.com example.org");

	struct store *st = NULL;
	if (use_store && sync_store) {
		snprintf(path, sizeof(path), "%s/state.db", dir);
		if (store_open(path, NULL, &st, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "store: %s\n", msg);
			return 1;
		}
	}
	struct policy_host host = { NULL, never_banned, NULL, NULL, NULL, NULL };
	double now = (double)time(NULL);
	char err[512];
	snprintf(path, sizeof(path), "%s/policy-state.sqlite3", dir);
	struct policy *p = use_store && !sync_store
		? policy_open(&kp, &kg, &kr, &ks, path, NULL, &host, now, err, sizeof(err))
		: policy_new(&kp, &kg, &kr, &ks, st, &host, now, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "policy: %s\n", err);
		return 1;
	}

	/* requests prepared up front so that snprintf is not measured */
	size_t cap = 1024;
	char *reqs = malloc((size_t)n * cap);
	int *lens = malloc((size_t)n * sizeof(int));
	struct trip *sent = malloc((size_t)n * sizeof(*sent));
	long nsent = 0, cat[3] = {0, 0, 0};
	double dt = 1.0 / rate;
	for (long i = 0; i < n; i++) {
		unsigned k = (unsigned)(xr() % 100);
		unsigned ip, snd, rcpt;
		double t = now + (double)i * dt;
		long pick = -1;
		if (k >= 60 && k < 90 && nsent > 0) {
			/* a retry: an earlier triplet at least 3 s old */
			long hi = nsent;
			while (hi > 0 && sent[hi - 1].t > t - 3)
				hi--;
			if (hi > 0)
				pick = (long)(xr() % (unsigned long long)hi);
		}
		if (k >= 90) {
			ip = (198u << 24) | (51u << 16) | (100u << 8) | (unsigned)(xr() % 254 + 1);
			snd = (unsigned)(xr() % 100000);
			rcpt = (unsigned)(xr() % 500);
			cat[2]++;
		} else if (pick >= 0) {
			ip = sent[pick].ip;
			snd = sent[pick].snd;
			rcpt = sent[pick].rcpt;
			cat[1]++;
		} else {
			ip = (10u << 24) | (unsigned)(xr() & 0xffffff);
			snd = (unsigned)(xr() % 1000000);
			rcpt = (unsigned)(xr() % 500);
			sent[nsent++] = (struct trip){ ip, snd, rcpt, t };
			cat[0]++;
		}
		lens[i] = build(reqs + (size_t)i * cap, cap, ip, snd, rcpt, (unsigned long)i);
	}

	struct policy_parser *pp = policy_parser_new();
	struct policy_req r;
	struct strbuf out = STRBUF_INIT;
	long defer = 0, dunno = 0, prepend = 0, other = 0, flushes = 0;
	double flush_s = 0, flush_max = 0, next_flush = now + every;
	double fonly_s = 0, fonly_max = 0;   /* policy_flush alone */
	double fcpu_s = 0, fcpu_max = 0;     /* ... its CPU time */
	policy_req_init(&r);
	double t0 = mono();
	for (long i = 0; i < n; i++) {
		double t = now + (double)i * dt;
		if (policy_parser_feed(pp, reqs + (size_t)i * cap, (size_t)lens[i], &r, err,
				       sizeof(err)) <= 0) {
			fprintf(stderr, "parse: %s\n", err);
			return 1;
		}
		strbuf_reset(&out);
		policy_eval(p, &r, t, &out);
		if (!strncmp(out.s, "DEFER_IF_PERMIT 4.2.0", 21))
			defer++;
		else if (!strcmp(out.s, "DUNNO"))
			dunno++;
		else if (!strncmp(out.s, "PREPEND", 7))
			prepend++;
		else
			other++;
		if (t >= next_flush) {
			double a = mono(), ca = cpu();
			policy_flush(p, t);
			double fl = mono() - a, fc = cpu() - ca;
			fcpu_s += fc;
			if (fc > fcpu_max)
				fcpu_max = fc;
			fonly_s += fl;
			if (fl > fonly_max)
				fonly_max = fl;
			policy_expire_step(p, t, 1000);
			flush_s += mono() - a;
			if (mono() - a > flush_max)
				flush_max = mono() - a;
			if (getenv("POLICYBENCH_VERBOSE"))
				fprintf(stderr, "flush %ld: %.1f ms (policy_flush %.2f ms, CPU %.2f ms)\n",
					flushes, (mono() - a) * 1e3, fl * 1e3, fc * 1e3);
			flushes++;
			next_flush += every;
		}
	}
	double total = mono() - t0;
	double a = mono();
	policy_flush(p, now + (double)n * dt);
	flush_s += mono() - a;
	double per = total / (double)n * 1e9;
	double flushper = flush_s / (double)n * 1e9;
	printf("requests    %ld (new %ld, retry %ld, whitelisted %ld), simulated %.0f/s over %.0f s\n",
	       n, cat[0], cat[1], cat[2], rate, (double)n * dt);
	printf("verdicts    greylisted %ld, dunno %ld, prepend %ld, other %ld\n", defer, dunno,
	       prepend, other);
	printf("cost        %.0f ns/request parse+eval+flush (flush and expiry: %.0f ns/request, "
	       "%ld flushes every %.3g s, longest %.1f ms, %s)\n", per, flushper, flushes, every,
	       flush_max * 1e3, !use_store ? "no store" : sync_store ? "SQLite store, synchronous"
	       : "state file, writer thread");
	printf("flush       policy_flush alone: %.0f us on average, longest %.2f ms; CPU %.0f us on "
	       "average, most %.2f ms\n", flushes ? fonly_s / (double)flushes * 1e6 : 0,
	       fonly_max * 1e3, flushes ? fcpu_s / (double)flushes * 1e6 : 0, fcpu_max * 1e3);
	printf("JSON {\"requests\":%ld,\"ns_per_request\":%.0f,\"flush_ns_per_request\":%.0f,"
	       "\"flush_max_ms\":%.2f,\"flush_only_avg_us\":%.0f,\"flush_only_max_ms\":%.2f,"
	       "\"greylisted\":%ld,\"dunno\":%ld,\"prepend\":%ld,\"other\":%ld}\n", n, per,
	       flushper, flush_max * 1e3, flushes ? fonly_s / (double)flushes * 1e6 : 0,
	       fonly_max * 1e3, defer, dunno, prepend, other);

	policy_req_free(&r);
	policy_parser_free(pp);
	strbuf_free(&out);
	a = mono();
	policy_free(p);   /* with the writer: waits until everything is committed */
	printf("shutdown    %.1f ms (drain and close)\n", (mono() - a) * 1e3);
	if (st)
		store_close(st);
	kvlist_free(&kp);
	kvlist_free(&kg);
	kvlist_free(&kr);
	kvlist_free(&ks);
	free(reqs);
	free(lens);
	free(sent);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	return system(path) == 0 ? 0 : 1;
}
