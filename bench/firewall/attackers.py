# Attackers and innocent clients for `smtpguard follow`'s latency, in CLIENT (the real stack:
# Postfix with Dovecot SASL in MX). Used by `npm run bench:firewall` (BENCH_PART=follow) and by
# test/system/follow.test.ts.
#
#   attackers.py MX LOG THRESHOLD SPREAD_S SPEC... where SPEC is ATTACKER@DELAY_S or innocent@ADDRESS
#
# Each attacker waits DELAY_S, then fails SASL AUTH (PLAIN, port 587) THRESHOLD times, one session
# each, then sends a SYN to MX:465 every 10 ms until one goes unanswered for 0.5 s (the kernel
# dropped it). A thread reads Postfix's LOG as it is written and notes when each attacker's
# THRESHOLD-th failure line appeared. The SYNs go to port 465, which smtpguard closes and nothing
# listens on in the stack: the kernel answers RST until the block is in force, then nothing
# (Postfix's own load plays no part). Per attacker it prints one JSON line:
#   {"ip", "logged": when the crossing line was in the log, "dropped": when the first unanswered
#    SYN was sent, "answered": SYNs answered after the crossing line}
# Innocent clients fail SASL once each (under any threshold), then send a SYN to MX:465 every 100 ms
# for SPREAD_S seconds plus 3; per innocent: {"innocent", "tries", "unanswered"}.
import base64, errno, json, os, re, select, socket, sys, threading, time

mx, log, threshold, spread = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
specs = sys.argv[5:]
attackers = [(s.split("@")[0], float(s.split("@")[1])) for s in specs if not s.startswith("innocent@")]
innocents = [s.split("@", 1)[1] for s in specs if s.startswith("innocent@")]
logged = {}
seen = {}
lock = threading.Lock()
stop = threading.Event()
PROBE_PORT = 465
# a SYN the kernel answered: accepted, or refused (RST: nothing listens)
ANSWERS = (0, errno.ECONNREFUSED)
FAILED = re.compile(rb"\[([0-9a-fA-F.:]+)\]: SASL \w+ authentication failed")


def watch_log():
    with open(log, "rb") as f:
        f.seek(0, os.SEEK_END)
        rest = b""
        while not stop.is_set():
            chunk = f.read()
            if not chunk:
                time.sleep(0.001)
                continue
            now = time.time()
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                m = FAILED.search(line)
                if m:
                    ip = m.group(1).decode()
                    with lock:
                        seen[ip] = seen.get(ip, 0) + 1
                        if seen[ip] == threshold and ip not in logged:
                            logged[ip] = now


def smtp_auth_fail(src):
    s = socket.create_connection((mx, 587), timeout=10, source_address=(src, 0))
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line or line[3:4] != b"-":
                return line

    reply()
    s.sendall(b"EHLO attacker.example.test\r\n")
    reply()
    s.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0nosuchuser\0wrong") + b"\r\n")
    answer = reply()
    try:
        s.sendall(b"QUIT\r\n")
    except OSError:
        pass
    s.close()
    return answer


def syn_until_dropped(src, since):
    """SYNs every 10 ms; returns (send time of the first one left unanswered for 0.5 s, answered after `since`)."""
    pending, answered = [], 0
    deadline = time.time() + 30
    while time.time() < deadline:
        now = time.time()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect((mx, PROBE_PORT))
        except BlockingIOError:
            pass
        pending.append((now, s))
        _, writable, _ = select.select([], [p for _, p in pending], [], 0.01)
        for t, p in list(pending):
            if p in writable:
                if p.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in ANSWERS and t >= since:
                    answered += 1
                p.close()
                pending.remove((t, p))
        if pending and now - pending[0][0] > 0.5:
            first = pending[0][0]
            for _, p in pending:
                p.close()
            return first, answered
    return None, answered


results = []


def attacker(ip, delay):
    time.sleep(delay)
    for _ in range(threshold):
        smtp_auth_fail(ip)
    t0 = time.time()
    while True:
        with lock:
            at = logged.get(ip)
        if at is not None or time.time() - t0 > 10:
            break
        time.sleep(0.001)
    dropped, answered = syn_until_dropped(ip, at if at is not None else t0)
    with lock:
        results.append({"ip": ip, "logged": at, "dropped": dropped, "answered": answered})


def innocent(ip):
    tries = unanswered = 0
    try:
        smtp_auth_fail(ip)
    except OSError:
        unanswered += 1
    end = time.time() + spread + 3
    while time.time() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        s.bind((ip, 0))
        tries += 1
        try:
            s.connect((mx, PROBE_PORT))
        except ConnectionRefusedError:
            pass
        except OSError:
            unanswered += 1
        s.close()
        time.sleep(0.1)
    with lock:
        results.append({"innocent": ip, "tries": tries, "unanswered": unanswered})


watcher = threading.Thread(target=watch_log, daemon=True)
watcher.start()
time.sleep(0.1)
threads = [threading.Thread(target=attacker, args=a) for a in attackers] + [threading.Thread(target=innocent, args=(i,)) for i in innocents]
for t in threads:
    t.start()
for t in threads:
    t.join()
stop.set()
for r in results:
    print(json.dumps(r), flush=True)
