#!/bin/sh
# A flood against `smtpguard follow` (no root: --firewall none, --no-reload, files in a temp
# directory): FLOOD_ADDRESSES distinct IPv4 addresses (default 1,000,000) fail SASL FLOOD_REPEAT
# times each (default 1; 3 makes each an offender at the --threshold 3 used here), written to the log
# over FLOOD_SECONDS (default 60); then a sentinel address fails 3 times.
# Prints how long after the flood's last line the sentinel was blocked (the follower kept up, or
# how far behind it was), the follower's peak RSS (VmHWM) then and after the full read that follows
# the flood (the larger), and its CPU time.
#   sh bench/follow-flood.sh          (npm run build first)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${FLOOD_ADDRESSES:-1000000}
S=${FLOOD_SECONDS:-60}
R=${FLOOD_REPEAT:-1}
D=$(mktemp -d /tmp/smtpguard-flood.XXXXXX)
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; rm -rf "$D"' EXIT
mkdir -p "$D/pf"
echo 'mynetworks = 127.0.0.0/8' > "$D/pf/main.cf"
: > "$D/pf/master.cf"
printf '# BEGIN smtpguard\n# END smtpguard\n' > "$D/access"
: > "$D/mail.log"
: > "$D/smtpguard.conf"
"$ROOT/bin/smtpguard.js" follow --access-map "$D/access" --map-type cidr --postfix-config-dir "$D/pf" \
  --lock-file "$D/lock" --state-dir "$D/state" --config "$D/smtpguard.conf" --log "$D/mail.log" \
  --firewall none --no-reload --threshold 3 --window 1h > "$D/out" 2>&1 &
PID=$!
sleep 1
python3 - "$D/mail.log" "$D/access" "$N" "$S" "$PID" "$R" <<'EOF'
import sys, time, datetime
log, access, n, spread, pid, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f+00:00')
def line(ip):
    return f"{stamp()} mx postfix/smtpd[7]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=admin\n"
def cpu():
    f = open(f"/proc/{pid}/stat").read().split(") ")[1].split(" ")
    return (int(f[11]) + int(f[12])) / 100
c0, t0 = cpu(), time.time()
batches = int(spread * 10)
per = (n + batches - 1) // batches
with open(log, "a") as f:
    for b in range(batches):
        start = b * per
        chunk = "".join(line(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}") * repeat for i in range(start, min(n, start + per)))
        f.write(chunk)
        f.flush()
        delay = t0 + (b + 1) * spread / batches - time.time()
        if delay > 0:
            time.sleep(delay)
    ended = time.time()
    f.write(line("192.0.2.222") * 3)
    f.flush()
while "192.0.2.222/32 REJECT" not in open(access).read():
    time.sleep(0.05)
    if time.time() - ended > 600:
        print("the sentinel was not blocked within 10 minutes")
        break
blocked = time.time()
def hwm():
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
at_block, cpu_block = hwm(), cpu()
# then the full read that follows the flood (at most 30 s after the last text): wait until it is
# done (the follower idle for 3 s, at least 35 s after the flood) and read the peak again
while True:
    c = cpu()
    time.sleep(3)
    if time.time() - ended > 35 and cpu() - c < 0.1:
        break
print(f"flood: {n} addresses ({repeat} failure{'' if repeat == 1 else 's'} each) over {ended - t0:.1f} s; sentinel blocked {blocked - ended:.2f} s after the flood's last line; "
      f"follower peak RSS {at_block:.0f} MiB then, {hwm():.0f} MiB after its next full read; CPU {cpu_block - c0:.1f} s in {blocked - t0:.1f} s")
EOF
