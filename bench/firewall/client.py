# The client side of npm run bench:firewall, in CLIENT (bench/firewall/stack.ts):
#   latency DST SRC N PORT...  connects to the ports in turn, N times each (after 50 unmeasured rounds), and
#                              prints one line per port of connect times in microseconds;
#   probe DST SRC TIMEOUT      prints connected or timeout (port 25);
#   burst DST SRC N SECONDS PORT  sends N raw SYNs to DST:PORT (distinct source ports) and prints the
#                              /proc/stat deltas and its own CPU time, as JSON.
import json, resource, socket, struct, sys, time
cmd, dst, src = sys.argv[1], sys.argv[2], sys.argv[3]
if cmd == "latency":
    n = int(sys.argv[4])
    ports = [int(p) for p in sys.argv[5:]]
    out = [[] for _ in ports]
    for i in range(n + 50):
        for k, port in enumerate(ports):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.bind((src, 0))
            s.settimeout(5)
            t = time.perf_counter()
            s.connect((dst, port))
            d = time.perf_counter() - t
            s.close()
            if i >= 50:
                out[k].append(d)
    for samples in out:
        print(" ".join("%.1f" % (x * 1e6) for x in samples))
elif cmd == "probe":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(float(sys.argv[4]))
    try:
        s.connect((dst, 25))
        print("connected")
    except socket.timeout:
        print("timeout")
    except OSError as e:
        print("error %s" % e)
elif cmd == "burst":
    n, limit, port = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    s4, d4 = socket.inet_aton(src), socket.inet_aton(dst)
    def csum(b):
        total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        total = (total >> 16) + (total & 0xFFFF)
        total += total >> 16
        return ~total & 0xFFFF
    pkts = []
    for i in range(n):
        sport = 1024 + i
        hdr = struct.pack("!HHIIBBHHH", sport, port, (i * 2654435761) & 0xFFFFFFFF, 0, 5 << 4, 0x02, 64240, 0, 0)
        c = csum(s4 + d4 + struct.pack("!BBH", 0, 6, len(hdr)) + hdr)
        pkts.append(hdr[:16] + struct.pack("!H", c) + hdr[18:])
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    raw.bind((src, 0))
    def stat():
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    a = stat()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    sent = 0
    for p in pkts:
        raw.sendto(p, (dst, 0))
        sent += 1
        if (sent & 255) == 0 and time.perf_counter() - t0 > limit:
            break
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(0.05)
    b = stat()
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    print(json.dumps({"sent": sent, "wall": wall, "jiffies": dict(zip(names, [y - x for x, y in zip(a, b)])), "hz": 100,
                      "selfSystem": r1.ru_stime - r0.ru_stime, "selfUser": r1.ru_utime - r0.ru_utime}))
