#!/usr/bin/env python3
"""Soak test: many connections from several real MySQL clients for a long time, watching whether
the server's memory and connection count level off.

The clients are the ones tests/clients installs (PyMySQL and mysqlclient from its virtualenv,
Node's mysql2 from its node_modules, the mariadb CLI from Debian); a client that is not installed
is left out and its share of the connections goes to PyMySQL. Each connection runs a closed loop
of an account store's traffic with a think time between operations:

- the Exim recipient lookup (text protocol, literals, two unique-key lookups);
- the account page: account joined with its domain and its forwards;
- alias and list lookups, a COUNT of a list's subscribers;
- an UPDATE of last_login by primary key;
- a transaction: lock the account row (FOR UPDATE), add a forward, delete it again, then COMMIT,
  or ROLLBACK one time in five;
- a GROUP BY over all accounts (an operator's question), rarely;
- a reconnect: the connection is closed (politely with COM_QUIT, or one time in three by
  dropping the socket, as a killed client would) and a new one opened;
- the CLI workers start a new `mariadb` process for every operation, so they reconnect every time.

Every --sample-every seconds the sampler records the RSS, and its anonymous part (RssAnon: heap
and stacks), of every process whose command line names the cluster's data directory (sqld, each datad and its worker), `Threads_connected` and the
number of SHOW PROCESSLIST rows, and the operations and errors so far. After --seconds the
workers stop and close their connections; the sampler then checks that the connection count
falls back to its own single connection.

The verdict, per process: memory has levelled off when the peak of the anonymous memory in the
second half of the run is at most 10 % (and 8 MiB) above the peak of the first half (the rest of
the RSS is mostly the binary's pages, faulted in as code runs for the first time: bounded, and no
leak); connections have not leaked when
Threads_connected returns to 1 after the clients are gone. Exit status 0 when both hold and no
operation failed with an unexpected error, 1 otherwise.

Usage (benches/soak/soak.sh starts a cluster and calls this):
    soak.py --port P --data-dir DIR [--seconds 600] [--connections 200] [--sample-every 10]
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_CACHE = os.environ.get("CLIENT_CACHE", os.path.expanduser("~/.cache/cairn-clients"))
DATABASE = "cairn_soak"

DOMAINS = 20
ACCOUNTS = 2000
LISTS = 20
SUBSCRIBERS = 4000
HOSTS = [f"imap{i}.example.net" for i in range(1, 9)]

# MySQL errors a realistic mix may meet and retry, as an application does: lock wait timeout
# and deadlock (two transactions on one account), and a dropped connection of our own doing.
EXPECTED_ERRORS = {1205, 1213}


def log(msg):
    print(msg, flush=True)


def localpart(i):
    return f"user{i}"


def domain_name(d):
    return f"dom{d}.example"


# ---- Schema and data ---------------------------------------------------------------------------

SCHEMA = [
    f"DROP DATABASE IF EXISTS {DATABASE}",
    f"CREATE DATABASE {DATABASE} DEFAULT CHARACTER SET utf8mb4",
    f"""CREATE TABLE {DATABASE}.domain (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(255) NOT NULL, UNIQUE KEY name (name))""",
    f"""CREATE TABLE {DATABASE}.account (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        domain_id INT UNSIGNED NOT NULL, localpart VARCHAR(64) NOT NULL,
        host VARCHAR(64) NOT NULL, quota_mb INT UNSIGNED NOT NULL DEFAULT 1024,
        state ENUM('active','disabled','deleted') NOT NULL DEFAULT 'active',
        last_login DATETIME NULL,
        UNIQUE KEY domain_local (domain_id, localpart), KEY host (host))""",
    f"""CREATE TABLE {DATABASE}.forward (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        account_id INT UNSIGNED NOT NULL, address VARCHAR(255) NOT NULL,
        KEY account_id (account_id))""",
    f"""CREATE TABLE {DATABASE}.alias (
        domain_id INT UNSIGNED NOT NULL, localpart VARCHAR(64) NOT NULL,
        target VARCHAR(255) NOT NULL, PRIMARY KEY (domain_id, localpart, target))""",
    f"""CREATE TABLE {DATABASE}.list (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(64) NOT NULL, UNIQUE KEY name (name))""",
    f"""CREATE TABLE {DATABASE}.subscriber (
        list_id INT UNSIGNED NOT NULL, address VARCHAR(255) NOT NULL,
        digest TINYINT(1) NOT NULL DEFAULT 0, PRIMARY KEY (list_id, address))
        PARTITION BY KEY (list_id)""",
]


def account_domain(i):
    return (i - 1) % DOMAINS + 1


def load(connect):
    conn = connect()
    cur = conn.cursor()
    for stmt in SCHEMA:
        cur.execute(stmt)
    cur.executemany(f"INSERT INTO {DATABASE}.domain (name) VALUES (%s)",
                    [(domain_name(d),) for d in range(1, DOMAINS + 1)])
    rows = [(account_domain(i), localpart(i), HOSTS[i % len(HOSTS)],
             "active" if i % 10 else "disabled") for i in range(1, ACCOUNTS + 1)]
    for start in range(0, len(rows), 500):
        cur.executemany(f"INSERT INTO {DATABASE}.account (domain_id, localpart, host, state) "
                        "VALUES (%s, %s, %s, %s)", rows[start:start + 500])
    cur.executemany(f"INSERT INTO {DATABASE}.forward (account_id, address) VALUES (%s, %s)",
                    [(i, f"fwd{i}@elsewhere.example") for i in range(1, ACCOUNTS + 1, 4)])
    cur.executemany(f"INSERT INTO {DATABASE}.alias (domain_id, localpart, target) VALUES (%s, %s, %s)",
                    [(account_domain(i), f"alias{i}", f"{localpart(i)}@{domain_name(account_domain(i))}")
                     for i in range(1, 501)])
    cur.executemany(f"INSERT INTO {DATABASE}.list (name) VALUES (%s)", [(f"list{l}",) for l in range(1, LISTS + 1)])
    subs = [(s % LISTS + 1, f"{localpart(s % ACCOUNTS + 1)}.{s}@sub.example") for s in range(SUBSCRIBERS)]
    for start in range(0, len(subs), 500):
        cur.executemany(f"INSERT INTO {DATABASE}.subscriber (list_id, address) VALUES (%s, %s)", subs[start:start + 500])
    conn.commit()
    conn.close()


# ---- Statistics shared by the workers ----------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}
        self.errors = {}
        self.unexpected = []

    def op(self, client, n=1):
        with self.lock:
            self.ops[client] = self.ops.get(client, 0) + n

    def error(self, client, code, text):
        with self.lock:
            key = f"{client}:{code}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if code not in EXPECTED_ERRORS and len(self.unexpected) < 20:
                self.unexpected.append(f"{client}: {code} {text}")

    def snapshot(self):
        with self.lock:
            return dict(self.ops), dict(self.errors)


def error_code(exc):
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return -1


# ---- Python DB-API workers (PyMySQL, mysqlclient) ----------------------------------------------

def dbapi_worker(name, connect, stop, stats, think_s):
    rng = random.Random(hash((name, threading.get_ident())))
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = connect()
            cur = conn.cursor()
            roll = rng.random()
            i = rng.randint(1, ACCOUNTS)
            d = account_domain(i)
            if roll < 0.40:
                cur.execute("select a.* from cairn_soak.account a, cairn_soak.domain d where a.domain_id=d.id "
                            f"and a.localpart='{localpart(i)}' and d.name='{domain_name(d)}' and a.state='active'")
                cur.fetchall()
            elif roll < 0.55:
                cur.execute("SELECT a.id, a.localpart, d.name, f.address FROM cairn_soak.account a "
                            "JOIN cairn_soak.domain d ON d.id = a.domain_id "
                            "LEFT JOIN cairn_soak.forward f ON f.account_id = a.id WHERE a.id = %s", (i,))
                cur.fetchall()
            elif roll < 0.65:
                cur.execute("SELECT target FROM cairn_soak.alias WHERE domain_id = %s AND localpart = %s",
                            (d, f"alias{i % 500 + 1}"))
                cur.fetchall()
                cur.execute("SELECT COUNT(*) FROM cairn_soak.subscriber WHERE list_id = %s", (i % LISTS + 1,))
                cur.fetchall()
            elif roll < 0.80:
                cur.execute("UPDATE cairn_soak.account SET last_login = NOW() WHERE id = %s", (i,))
                conn.commit()
            elif roll < 0.90:
                conn.begin()
                cur.execute("SELECT quota_mb FROM cairn_soak.account WHERE id = %s FOR UPDATE", (i,))
                cur.fetchall()
                cur.execute("INSERT INTO cairn_soak.forward (account_id, address) VALUES (%s, %s)",
                            (i, f"tmp{rng.randint(0, 10**9)}@soak.example"))
                cur.execute("DELETE FROM cairn_soak.forward WHERE id = LAST_INSERT_ID()")
                if rng.random() < 0.2:
                    conn.rollback()
                else:
                    conn.commit()
            elif roll < 0.92:
                cur.execute("SELECT host, COUNT(*) FROM cairn_soak.account GROUP BY host")
                cur.fetchall()
            else:
                # A reconnect: politely, or by dropping the socket as a killed client would.
                cur.close()
                if rng.random() < 1 / 3:
                    drop_socket(conn)
                else:
                    conn.close()
                conn = None
            if conn is not None:
                cur.close()
            stats.op(name)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and the loop goes on
            stats.error(name, error_code(exc), str(exc)[:200])
            try:
                if conn is not None:
                    conn.rollback()
            except Exception:  # noqa: BLE001 - the connection may be gone; it is replaced below
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
        stop.wait(think_s * (0.5 + rng.random()))
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing at the end; the server notices either way
            pass


def drop_socket(conn):
    """Closes the TCP connection without COM_QUIT, as a client killed with -9 leaves it."""
    sock = getattr(conn, "_sock", None)  # PyMySQL
    if sock is not None:
        sock.close()
        conn._sock = None
        return
    # mysqlclient has no socket object to reach: shut the file descriptor down underneath it.
    import socket as socket_module
    fd = conn.fileno() if hasattr(conn, "fileno") else None
    if fd is not None:
        socket_module.socket(fileno=os.dup(fd)).shutdown(socket_module.SHUT_RDWR)
    conn.close()


# ---- mariadb CLI workers: a new process (a new connection) per operation ------------------------

def cli_worker(args, stop, stats, think_s):
    rng = random.Random()
    base = ["mariadb", "--protocol=TCP", f"--host={args.host}", f"--port={args.port}", f"--user={args.user}",
            "--batch", "--skip-column-names"]
    if args.password:
        base.append(f"--password={args.password}")
    while not stop.is_set():
        i = rng.randint(1, ACCOUNTS)
        d = account_domain(i)
        if rng.random() < 0.7:
            sql = ("select a.* from cairn_soak.account a, cairn_soak.domain d where a.domain_id=d.id "
                   f"and a.localpart='{localpart(i)}' and d.name='{domain_name(d)}' and a.state='active';")
        else:
            sql = (f"BEGIN; UPDATE cairn_soak.account SET quota_mb = quota_mb + 1 WHERE id = {i}; "
                   f"UPDATE cairn_soak.account SET quota_mb = quota_mb - 1 WHERE id = {i}; COMMIT;")
        try:
            done = subprocess.run(base + ["-e", sql], capture_output=True, text=True, timeout=60)
            if done.returncode == 0:
                stats.op("mysql-cli")
            else:
                # The CLI may echo the statement before its "ERROR n (state) at line m" line.
                found = re.search(r"^ERROR (\d+)", done.stderr, re.MULTILINE)
                code = int(found.group(1)) if found else -1
                stats.error("mysql-cli", code, done.stderr.strip()[-200:])
        except subprocess.TimeoutExpired:
            stats.error("mysql-cli", -2, "timed out after 60 s")
        stop.wait(think_s * (0.5 + rng.random()))


# ---- Sampling ----------------------------------------------------------------------------------

def cluster_processes(data_dir):
    """(pid, label) of every process whose command line names the data directory."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if not any(data_dir in w for w in words) or len(words) < 2:
            continue
        role = words[1]
        if role not in ("sqld", "datad"):
            continue
        node = words[words.index("--node-id") + 1] if "--node-id" in words else "?"
        label = f"{role}-{node}" + ("-worker" if "--worker" in words else "")
        found.append((int(entry), label))
    return sorted(found, key=lambda p: p[1])


def memory_kib(pid):
    """VmRSS and RssAnon of a process in KiB, or None if it is gone.

    RssAnon (heap, stacks) is what a leak grows. The rest of VmRSS is mostly the binary's own
    pages, faulted in as code paths run for the first time: bounded by the binary's size, and
    not a leak.
    """
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    found["rss"] = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    found["anon"] = int(line.split()[1])
    except OSError:
        return None
    return found if "rss" in found and "anon" in found else None


def server_counts(conn):
    cur = conn.cursor()
    cur.execute("SHOW STATUS LIKE 'Threads_connected'")
    threads = int(cur.fetchone()[1])
    cur.execute("SHOW PROCESSLIST")
    processes = len(cur.fetchall())
    cur.close()
    return threads, processes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--data-dir", required=True, help="the cluster's data directory (to find its processes)")
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--sample-every", type=int, default=10)
    p.add_argument("--think-ms", type=int, default=300, help="mean pause between a connection's operations")
    p.add_argument("--json", help="also write the samples and verdict to this file")
    args = p.parse_args()

    import pymysql
    try:
        import MySQLdb
    except ImportError:
        MySQLdb = None

    def pymysql_connect():
        return pymysql.connect(host=args.host, port=args.port, user=args.user, password=args.password,
                               autocommit=True, connect_timeout=30, read_timeout=120, write_timeout=120)

    def mysqlclient_connect():
        return MySQLdb.connect(host=args.host, port=args.port, user=args.user, passwd=args.password,
                               autocommit=True, connect_timeout=30)

    data_dir = os.path.realpath(args.data_dir)
    log(f"loading {DATABASE}: {ACCOUNTS} accounts in {DOMAINS} domains, {SUBSCRIBERS} subscribers")
    load(pymysql_connect)

    # The mix: a share per client; whatever is missing goes to PyMySQL.
    node_modules = os.path.join(CLIENT_CACHE, "node", "node_modules")
    have_node = shutil.which("node") and os.path.isdir(os.path.join(node_modules, "mysql2"))
    have_cli = shutil.which("mariadb") is not None
    n = args.connections
    mix = {"mysqlclient": n // 4 if MySQLdb else 0, "mysql2": n // 4 if have_node else 0,
           "mysql-cli": n // 10 if have_cli else 0}
    mix["pymysql"] = n - sum(mix.values())
    log("connections: " + ", ".join(f"{k} {v}" for k, v in mix.items()))

    stats = Stats()
    stop = threading.Event()
    think_s = args.think_ms / 1000.0
    threads = []
    for k in range(mix["pymysql"]):
        threads.append(threading.Thread(target=dbapi_worker, args=("pymysql", pymysql_connect, stop, stats, think_s), daemon=True))
    for k in range(mix["mysqlclient"]):
        threads.append(threading.Thread(target=dbapi_worker, args=("mysqlclient", mysqlclient_connect, stop, stats, think_s), daemon=True))
    for k in range(mix["mysql-cli"]):
        threads.append(threading.Thread(target=cli_worker, args=(args, stop, stats, think_s), daemon=True))

    node_proc = None
    if mix["mysql2"]:
        env = dict(os.environ, NODE_PATH=node_modules)
        node_proc = subprocess.Popen(
            ["node", os.path.join(HERE, "mysql2_worker.js"), args.host, str(args.port), args.user, args.password,
             str(mix["mysql2"]), str(args.think_ms)],
            stdout=subprocess.PIPE, text=True, env=env)

        def read_node():
            for line in node_proc.stdout:
                try:
                    report = json.loads(line)
                except ValueError:
                    continue
                stats.op("mysql2", report.get("ops", 0))
                for code, count in report.get("errors", {}).items():
                    for _ in range(count):
                        stats.error("mysql2", int(code) if code.lstrip("-").isdigit() else -1, report.get("last_error", ""))
        threading.Thread(target=read_node, daemon=True).start()

    sampler = pymysql_connect()
    processes = cluster_processes(data_dir)
    if not processes:
        log(f"no sqld/datad processes name {data_dir}: cannot sample memory")
        return 2
    log("processes: " + ", ".join(f"{label} (pid {pid})" for pid, label in processes))

    samples = []

    def sample(phase, elapsed):
        t, pl = server_counts(sampler)
        ops, errors = stats.snapshot()
        memory = {label: memory_kib(pid) for pid, label in processes}
        rss = {label: m["rss"] if m else None for label, m in memory.items()}
        anon = {label: m["anon"] if m else None for label, m in memory.items()}
        samples.append({"t": round(elapsed), "phase": phase, "threads_connected": t, "processlist": pl,
                        "ops": sum(ops.values()), "errors": sum(errors.values()), "rss_kib": rss, "anon_kib": anon})
        log(f"t={elapsed:5.0f}s {phase:5} Threads_connected={t:4d} processlist={pl:4d} ops={sum(ops.values()):8d} "
            f"errors={sum(errors.values()):5d} "
            + " ".join(f"{k}={rss[k] // 1024 if rss[k] else '?'}M/{anon[k] // 1024 if anon[k] else '?'}M" for k in rss))

    started = time.monotonic()
    sample("idle", 0)
    for th in threads:
        th.start()
    next_sample = started + args.sample_every
    while time.monotonic() - started < args.seconds:
        time.sleep(max(0.0, next_sample - time.monotonic()))
        next_sample += args.sample_every
        sample("load", time.monotonic() - started)

    stop.set()
    if node_proc is not None:
        node_proc.send_signal(signal.SIGTERM)
    for th in threads:
        th.join(timeout=90)
    if node_proc is not None:
        try:
            node_proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node_proc.kill()
    # The server notices closed and dropped connections within a moment; give it a few seconds.
    for _ in range(15):
        time.sleep(2)
        sample("after", time.monotonic() - started)
        if samples[-1]["threads_connected"] == 1:
            break
    sampler.close()

    ops, errors = stats.snapshot()
    load_samples = [s for s in samples if s["phase"] == "load"]
    verdict = {"memory": {}, "connections_return_to_1": samples[-1]["threads_connected"] == 1}
    log("")
    log(f"operations: {ops}")
    log(f"errors: {errors or 'none'}")
    for msg in stats.unexpected:
        log(f"  unexpected: {msg}")
    log("Memory per process (MiB), RSS and, in brackets, its anonymous part (heap and stacks):")
    log("  start (first loaded sample) / peak / end; first-half peak -> second-half peak")
    levelled_all = True
    for _, label in processes:
        rss = [s["rss_kib"][label] for s in load_samples if s["rss_kib"].get(label) and s["anon_kib"].get(label)]
        anon = [s["anon_kib"][label] for s in load_samples if s["rss_kib"].get(label) and s["anon_kib"].get(label)]
        if len(anon) < 4:
            continue
        half = len(anon) // 2
        # A leak grows the anonymous memory; file-backed pages (the binary) are bounded by its size.
        first_peak, second_peak = max(anon[:half]), max(anon[half:])
        levelled = second_peak <= max(first_peak * 1.10, first_peak + 8 * 1024)
        levelled_all &= levelled
        verdict["memory"][label] = {"start_kib": rss[0], "peak_kib": max(rss), "end_kib": rss[-1],
                                    "anon_start_kib": anon[0], "anon_peak_kib": max(anon), "anon_end_kib": anon[-1],
                                    "anon_first_half_peak_kib": first_peak, "anon_second_half_peak_kib": second_peak,
                                    "levelled": levelled}
        log(f"  {label:16} {rss[0] / 1024:6.1f} / {max(rss) / 1024:6.1f} / {rss[-1] / 1024:6.1f}"
            f" ({anon[0] / 1024:5.1f} / {max(anon) / 1024:5.1f} / {anon[-1] / 1024:5.1f});"
            f" anon {first_peak / 1024:5.1f} -> {second_peak / 1024:5.1f}  {'levelled off' if levelled else 'STILL GROWING'}")
    conns = [s["threads_connected"] for s in load_samples]
    log(f"Threads_connected under load: min {min(conns)}, max {max(conns)}; after the clients left: "
        f"{samples[-1]['threads_connected']} (processlist {samples[-1]['processlist']})")
    ok = levelled_all and verdict["connections_return_to_1"] and not stats.unexpected
    log("verdict: " + ("memory and connections level off" if ok else "NOT OK"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "ops": ops, "errors": errors, "verdict": verdict, "ok": ok}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
