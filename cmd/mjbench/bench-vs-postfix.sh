#!/usr/bin/env bash
# bench-vs-postfix.sh: on this machine, in one run, drive the same load
# through mjrelay and through Postfix (Debian's package, as a relayhost with
# SASL and verified STARTTLS to the same local sink), alternating the two
# systems RUNS times each, and print the side-by-side table. It is a
# benchmark, not a test: nothing asserts on the numbers. See
# docs/BENCHMARKS.md for the method.
#
#   cmd/mjbench/bench-vs-postfix.sh                 # as root, from the repository
#   RUNS=5 OUT=/tmp/res cmd/mjbench/bench-vs-postfix.sh
#
# Parameters are the environment variables below; TMPDIR is where both
# queues go (default /tmp, which must be on the disk and reachable by the
# "postfix" user).
#
# Needs root (it installs and starts Postfix), Go, Debian/apt.
set -Eeuo pipefail

RUNS=${RUNS:-3}                # runs per system, alternated
N=${N:-20000}                  # messages in the throughput phase
WARMUP=${WARMUP:-2000}         # unrecorded messages before it
CONNS=${CONNS:-32}             # sessions in the throughput phase
SIZE=${SIZE:-10240}            # message size, bytes
LAT_N=${LAT_N:-1000}           # messages in the latency phase ...
RATE=${RATE:-100}              # ... at this rate (msg/s)
BIG=${BIG:-25MB}               # the big message (25,000,000 bytes)
IDLE=${IDLE:-1000}             # idle connections
BULK=${BULK:-20000}            # bulk messages in the burst
BULK_CONNS=${BULK_CONNS:-8}    # sessions submitting the burst
UPSTREAM_DELAY=${UPSTREAM_DELAY:-2ms}  # sink's reply delay during the burst
OUT=${OUT:-$PWD/mjbench-results}       # results.jsonl, table.txt, machine.txt, logs

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (installs and starts Postfix)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
# Both queues live here: a directory on the disk under test (not tmpfs, where
# fsync costs nothing), that the "postfix" user can reach.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mjbench.XXXXXX")
chmod 755 "$WORK"
BIN=$WORK/bin
BENCH=$BIN/mjbench
PF=$WORK/postfix               # etc/, queue/, data/, maillog
MJ=$WORK/mjrelay               # mjrelay.toml, data/
SINK_PID= MJ_PID= PF_UP=

log() { printf '%s %s\n' "$(date +%T)" "$*"; }

# ---- clean-up, also on failure -------------------------------------------
stop_mjrelay() {
	[ -n "$MJ_PID" ] || return 0
	kill -TERM "$MJ_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$MJ_PID" 2>/dev/null || break; sleep 0.2; done
	kill -KILL "$MJ_PID" 2>/dev/null || true
	wait "$MJ_PID" 2>/dev/null || true
	MJ_PID=
	rm -rf "$MJ/data"
}
postfix_master_pid() { tr -d ' \n' <"$PF/queue/pid/master.pid" 2>/dev/null || true; }
stop_postfix() {
	[ -n "$PF_UP" ] || return 0
	local m
	m=$(postfix_master_pid)
	postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
	if [ -n "$m" ]; then
		for _ in $(seq 100); do kill -0 "$m" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$m" 2>/dev/null; then # still there: this master and its children only
			local kids
			kids=$(pgrep -P "$m" || true)
			kill -KILL "$m" $kids 2>/dev/null || true
		fi
	fi
	PF_UP=
	rm -rf "$PF/queue" "$PF/data"/*     # the queue is recreated at start
}
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_mjrelay
	[ -f "$PF/maillog" ] && cp "$PF/maillog" "$OUT/postfix-maillog" 2>/dev/null
	stop_postfix
	if [ -n "$SINK_PID" ]; then kill -TERM "$SINK_PID" 2>/dev/null; wait "$SINK_PID" 2>/dev/null; fi
	rm -rf "$WORK"
	[ $rc = 0 ] || echo "bench-vs-postfix: failed (exit $rc); logs in $OUT" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- what it needs ---------------------------------------------------------
if ! command -v postfix >/dev/null || ! dpkg -s libsasl2-modules >/dev/null 2>&1 || ! [ -f /etc/ssl/certs/ca-certificates.crt ]; then
	log "installing postfix libsasl2-modules ca-certificates"
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix libsasl2-modules ca-certificates >/dev/null
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(findmnt -no FSTYPE --target "$WORK")" = tmpfs ]; then
	echo "warning: $WORK is on tmpfs: fsync is free there, so durability costs nothing; set TMPDIR to a directory on disk" >&2
fi

log "building mjrelay and mjbench from $ROOT"
(cd "$ROOT" && go build -o "$BIN/mjrelay" ./cmd/mjrelay && go build -o "$BENCH" ./cmd/mjbench)

mapfile -t P < <("$BENCH" freeport --n 5)
SINK_SMTP=${P[0]} SINK_HTTP=${P[1]} MJ_SMTP=${P[2]} MJ_HTTP=${P[3]} PF_SMTP=${P[4]}
SINK=http://127.0.0.1:$SINK_HTTP
SINK_USER=bench-api-key SINK_PASS=bench-secret-key

# ---- the sink: emulated Mailjet SMTP relay -------------------------------
mkdir -p "$WORK/tls" "$MJ" "$PF/etc" "$PF/data"
"$BENCH" gencert --dir "$WORK/tls" >/dev/null
"$BENCH" sink --listen "127.0.0.1:$SINK_SMTP" --http "127.0.0.1:$SINK_HTTP" \
	--tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem" \
	--user "$SINK_USER" --pass "$SINK_PASS" >"$OUT/sink.log" 2>&1 &
SINK_PID=$!
"$BENCH" ping --addr "127.0.0.1:$SINK_SMTP" --timeout 20s

# ---- mjrelay ---------------------------------------------------------------
cat >"$MJ/mjrelay.toml" <<EOF
# Shipped defaults except: where things are, the sink as Mailjet, no sender
# check (the sink has no REST API), and room for the idle-connection test.
data_dir = "$MJ/data"
hostname = "mjrelay.bench"
[smtp]
listen = "127.0.0.1:$MJ_SMTP"
listen_tls = ""
trusted_networks = ["127.0.0.1/32"]
max_connections = 1100
[mailjet]
api_key = "$SINK_USER"
secret_key = "$SINK_PASS"
smtp_host = "127.0.0.1"
smtp_port = $SINK_SMTP
smtp_tls = "starttls"
tls_ca_file = "$WORK/tls/ca.pem"
api_url = "http://127.0.0.1:9"
[http]
listen = "127.0.0.1:$MJ_HTTP"
[policy]
sender_check = "off"
EOF
start_mjrelay() {
	mkdir -p "$MJ/data"
	"$BIN/mjrelay" serve --config "$MJ/mjrelay.toml" >>"$OUT/mjrelay.log" 2>&1 &
	MJ_PID=$!
	ADDR=127.0.0.1:$MJ_SMTP PID=$MJ_PID
}

# ---- Postfix: its own instance, config and queue under $PF ----------------
chown postfix "$PF/data"
printf '[127.0.0.1]:%s %s:%s\n' "$SINK_SMTP" "$SINK_USER" "$SINK_PASS" >"$PF/etc/sasl_passwd"
chmod 600 "$PF/etc/sasl_passwd"
cat >"$PF/etc/main.cf" <<EOF
# Postfix defaults except what makes it a relay to the sink (relayhost, SASL,
# verified TLS, like mjrelay's upstream), its own directories, the same
# trust of 127.0.0.1 as mjrelay's trusted_networks, room for 25 MB.
compatibility_level = 3.6
config_directory = $PF/etc
queue_directory = $PF/queue
data_directory = $PF/data
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
myhostname = postfix.bench
mydomain = bench
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
message_size_limit = 30000000
biff = no
relayhost = [127.0.0.1]:$SINK_SMTP
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = texthash:$PF/etc/sasl_passwd
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_tls_security_level = secure
smtp_tls_secure_cert_match = in-v3.mailjet.test
smtp_tls_CAfile = $WORK/tls/ca.pem
smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache
smtp_tls_connection_reuse = yes
EOF
# Debian's master.cf without chroot, smtpd on our port with room for the
# idle connections, and tlsproxy (for smtp_tls_connection_reuse).
awk -v port="$PF_SMTP" 'BEGIN { OFS = "  " }
	/^#/ || /^[ \t]/ || NF == 0 { print; next }
	$1 == "smtp" && $2 == "inet" { print "127.0.0.1:" port, "inet", "n", "-", "n", "-", "1100", "smtpd"; next }
	{ $5 = "n"; print }
	END { print "tlsproxy", "unix", "-", "-", "n", "-", "0", "tlsproxy" }' /etc/postfix/master.cf >"$PF/etc/master.cf"
start_postfix() {
	mkdir -p "$PF/queue"
	PF_UP=1
	if ! postfix -c "$PF/etc" start >/dev/null 2>&1; then
		tail -n 20 "$PF/maillog" >&2
		return 1
	fi
	for _ in $(seq 50); do [ -n "$(postfix_master_pid)" ] && break; sleep 0.1; done
	ADDR=127.0.0.1:$PF_SMTP PID=$(postfix_master_pid)
}

# ---- one run ---------------------------------------------------------------
# measure SYSTEM RUN PHASE mjbench-args...: one JSON line into results.jsonl.
measure() {
	local sys=$1 run=$2 phase=$3 js rc=0
	shift 3
	js=$("$BENCH" "$@" --json 2>>"$OUT/mjbench.log") || rc=$?
	if [ -n "$js" ]; then
		printf '{"system":"%s","run":%d,"phase":"%s","m":%s}\n' "$sys" "$run" "$phase" "$js" >>"$RESULTS"
	fi
	if [ $rc != 0 ]; then log "  $phase: FAILED (see $OUT/mjbench.log) $js"; else log "  $phase: $js"; fi
}
up() { # start SYSTEM and wait for its greeting
	"start_$1"
	"$BENCH" ping --addr "$ADDR" --timeout 60s
}
run_system() {
	local sys=$1 run=$2
	log "$sys run $run"
	up "$sys"
	measure "$sys" "$run" idle idle --addr "$ADDR" --conns "$IDLE" --hold 5s --rss-pid "$PID"
	"stop_$sys"                  # fresh processes for the rest
	up "$sys"
	measure "$sys" "$run" big load --addr "$ADDR" --conns 1 --n 1 --size "$BIG" --kind big --sink "$SINK" --wait 120s --rss-pid "$PID"
	"$BENCH" load --addr "$ADDR" --conns "$CONNS" --n "$WARMUP" --size "$SIZE" --kind warmup --sink "$SINK" --wait 120s >/dev/null 2>>"$OUT/mjbench.log" || true
	measure "$sys" "$run" accept load --addr "$ADDR" --conns "$CONNS" --n "$N" --size "$SIZE" --kind load --sink "$SINK" --wait 300s --cpu-pid "$PID"
	measure "$sys" "$run" latency load --addr "$ADDR" --conns 4 --n "$LAT_N" --rate "$RATE" --size "$SIZE" --kind latency --sink "$SINK" --wait 120s
	measure "$sys" "$run" burst burst --addr "$ADDR" --bulk "$BULK" --bulk-conns "$BULK_CONNS" --sink "$SINK" --upstream-delay "$UPSTREAM_DELAY" --wait 300s
	"stop_$sys"
}

# ---- the machine -----------------------------------------------------------
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
	echo "memory: $(free -g | awk '/^Mem:/ { print $2 " GiB total, " $7 " GiB available" }')"
	echo "kernel: $(uname -sr)"
	echo "disk: $(findmnt -no SOURCE,FSTYPE,OPTIONS --target "$WORK") ($(lsblk -dno ROTA,SIZE "$(findmnt -no SOURCE --target "$WORK")" 2>/dev/null | awk '{ print ($1 == 1 ? "rotational" : "non-rotational") ", " $2 }'))"
	echo "postfix: $(postconf -d -h mail_version 2>/dev/null); go: $(go version | awk '{ print $3 }')"
	echo "mjrelay: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (modified tree)')"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
log "params: RUNS=$RUNS N=$N CONNS=$CONNS SIZE=$SIZE LAT_N=$LAT_N RATE=$RATE BIG=$BIG IDLE=$IDLE BULK=$BULK BULK_CONNS=$BULK_CONNS UPSTREAM_DELAY=$UPSTREAM_DELAY"

start=$SECONDS
for run in $(seq "$RUNS"); do
	run_system mjrelay "$run"
	run_system postfix "$run"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); took $((SECONDS - start)) s" >>"$OUT/machine.txt"

notes=()
while IFS= read -r line; do notes+=(--note "$line"); done <"$OUT/machine.txt"
notes+=(--note "params: N=$N x ${SIZE} B over $CONNS conns (after $WARMUP warm-up); latency: $LAT_N at $RATE msg/s over 4 conns; big: $BIG; idle: $IDLE conns; burst: $BULK bulk over $BULK_CONNS conns, probes every 10 ms, upstream delay $UPSTREAM_DELAY")
echo
"$BENCH" table --in "$RESULTS" --out "$OUT/table.txt" "${notes[@]}"
echo
log "results in $OUT (table.txt, results.jsonl, machine.txt, logs)"
