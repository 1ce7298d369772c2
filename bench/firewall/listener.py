# The listener of npm run bench:firewall (bench/firewall/stack.ts runs it in MX):
# python3 listener.py CONTROL_PORT accepts and closes on ports 25 and CONTROL_PORT, nothing else.
import select, socket, sys
socks = []
for port in (25, int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    socks.append(s)
print("listening", flush=True)
while True:
    ready, _, _ = select.select(socks, [], [])
    for s in ready:
        try:
            c, _ = s.accept()
            c.close()
        except OSError:
            pass
