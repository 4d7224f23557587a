#!/bin/sh
# mxjail set-up on a Debian 12 machine (run as root):
#   ./setup.sh run    install build dependencies, build, install and start mxjail
#                     in the foreground with the stock configuration (/etc/mxjail)
#   ./setup.sh test   install build and test dependencies, build, run the whole suite
#   ./setup.sh asan   the same suite built with AddressSanitizer + UBSan
#   ./setup.sh fuzz   build the libFuzzer targets with clang and run each briefly
set -eu
cd "$(dirname "$0")"

BUILD_DEPS="build-essential cmake pkg-config libpcre2-dev libsqlite3-dev libnftables-dev libsystemd-dev
	libssl-dev libhiredis-dev libmaxminddb-dev libipset-dev libmnl-dev"
TEST_DEPS="libcmocka-dev python3 python3-pytest python3-systemd clang nftables iproute2 systemd-journal-remote
	dovecot-imapd dovecot-pop3d iptables ipset postfix swaks openssl dnsmasq-base redis-server chromium curl
	libnet-server-perl libberkeleydb-perl libnetaddr-ip-perl libio-multiplex-perl"

apt_install() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	export DEBIAN_FRONTEND=noninteractive
	# Postfix, Dovecot and Redis are test components started by hand on loopback:
	# keep their packaged services from starting (policy-rc.d) and Postfix unconfigured.
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -qq
	# shellcheck disable=SC2086
	rc=0
	apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
	return $rc
}

# Debian's fail2ban package, unpacked (never installed): its filter.d and its
# annotated sample logs are the reference the test suite checks mxjail against.
fetch_fail2ban() {
	dir=build-deps/fail2ban
	[ -d "$dir/root/etc/fail2ban" ] && return 0
	mkdir -p "$dir"
	(cd "$dir" && apt-get download fail2ban >/dev/null 2>&1 && dpkg-deb -x fail2ban_*.deb root)
}

build() { # build DIR [cmake args...]
	b=$1; shift
	cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$b" -j"$(nproc)"
}

run_suite() { # run_suite DIR
	MXJAIL_F2B_ROOT="$PWD/build-deps/fail2ban/root" \
		ctest --test-dir "$1" --output-on-failure -j"$(nproc)"
}

case "${1:-}" in
run)
	apt_install $BUILD_DEPS
	build build
	cmake --install build >/dev/null
	exec /usr/local/sbin/mxjail run -f
	;;
test)
	apt_install $BUILD_DEPS $TEST_DEPS
	fetch_fail2ban
	build build
	run_suite build
	;;
asan)
	apt_install $BUILD_DEPS $TEST_DEPS
	fetch_fail2ban
	build build-asan -DMXJAIL_SANITIZE=ON
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_suite build-asan
	;;
fuzz)
	apt_install $BUILD_DEPS $TEST_DEPS
	CC=clang build build-fuzz -DMXJAIL_FUZZ=ON
	for t in build-fuzz/fuzz/fuzz_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		corpus=fuzz/corpus/${name#fuzz_}
		mkdir -p "build-fuzz/corpus-$name"
		echo "fuzzing $name for ${FUZZ_SECONDS:-20}s"
		# a crash, leak or timeout found by the fuzzer fails the run (its report is shown)
		rc=0
		"$t" -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 \
			$( [ -f "$t.dict" ] && echo "-dict=$t.dict" ) \
			"build-fuzz/corpus-$name" $( [ -d "$corpus" ] && echo "$corpus" ) \
			>"build-fuzz/$name.log" 2>&1 || rc=$?
		if [ "$rc" -ne 0 ]; then
			tail -n 60 "build-fuzz/$name.log"
			echo "$name: the fuzzer failed (exit $rc)" >&2
			fuzz_failed=1
		else
			tail -n 2 "build-fuzz/$name.log"
		fi
	done
	[ "${fuzz_failed:-0}" = 0 ]
	;;
*)
	sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
