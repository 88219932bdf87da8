# A recording TCP proxy, used to capture seed inputs from real sessions (see fuzz/tools/seeds_from_capture.py).
# Usage: record_proxy.py LISTEN_PORT TARGET_PORT OUT_DIR. Each connection k writes OUT_DIR/k-c2s (client to
# server bytes) and OUT_DIR/k-s2c (server to client), the first MiB of each.
import socket, sys, threading, os
listen_port, target_port, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(outdir, exist_ok=True)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port)); srv.listen(16)
counter = [0]
lock = threading.Lock()
LIMIT = 1 << 20
def pipe(a, b, path):
    f = open(path, "wb"); n = 0
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            if n < LIMIT:
                f.write(d[:LIMIT - n]); f.flush(); n += len(d)
            b.sendall(d)
    except OSError: pass
    finally:
        f.close()
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
def handle(c):
    with lock:
        counter[0] += 1; k = counter[0]
    s = socket.create_connection(("127.0.0.1", target_port))
    threading.Thread(target=pipe, args=(c, s, os.path.join(outdir, "%d-c2s" % k)), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, os.path.join(outdir, "%d-s2c" % k)), daemon=True).start()
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
