#!/usr/bin/env python3
"""Restart speed at scale: node restart, initial node restart and system restart of a data node
holding about --data-mib MiB of rows in memory, with the checkpoint that precedes them.

Not part of CI (a 1 GiB run takes several minutes and several GiB of RAM and disk). It starts a
private cluster of its own on free 127.0.0.1 ports (one management node, one node group of two
data nodes, so each data node holds every row, and two SQL nodes), loads the rows with multi-row
INSERTs over several connections, waits until both data nodes have written a local checkpoint
holding every row, then times, each from the `cairn mgm` command until the node reports
`started` and a point select through every SQL node answers:

  1. `2 RESTART`      node restart: load the local checkpoint, replay the log, catch up;
  2. `2 RESTART -i`   initial node restart: wipe, copy the live replica's checkpoint, catch up;
  3. `ALL RESTART`    system restart: every node recovers from its own disk.

It prints what the data nodes logged about each step (checkpoint written, checkpoint restored,
snapshot installed: bytes, milliseconds, MiB/s), the RSS of the data node processes, and finally
checks the row count. Needs the `mysql` command-line client and a release build:

    cargo build --release --bin cairn
    scripts/restart_bench.py --data-mib 1024
    scripts/restart_bench.py --data-mib 1024 --min-speed 1G --max-speed 1G   # unthrottled checkpoints

Everything is under a temporary directory removed at the end (--keep keeps it); every process
it started is killed at the end, also on errors and Ctrl-C.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MGMD_NODE_ID = 49
DATA_NODES = (1, 2)
SQL_NODES = (100, 101)


def free_port(taken):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


def parse_bytes(text):
    """'10M' -> bytes, as the cluster config reads it (K, M, G: powers of 1024)."""
    match = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 512M, 2G)")
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)]


class Bench:
    def __init__(self, args):
        self.args = args
        self.cairn = os.path.abspath(args.cairn)
        self.dir = args.dir or tempfile.mkdtemp(prefix="cairn-restart-bench-")
        os.makedirs(self.dir, exist_ok=True)
        self.processes = {}
        ports = set()
        self.mgm_port = free_port(ports)
        self.server_ports = {n: free_port(ports) for n in DATA_NODES}
        self.mysql_ports = {n: free_port(ports) for n in SQL_NODES}
        self.config_path = os.path.join(self.dir, "cluster.toml")
        self.secret = f"restart-bench-{os.getpid()}"

    # ----- the cluster -----

    def write_config(self):
        a = self.args
        data_memory = max(2 * a.data_mib + 512, 1024)
        text = (
            "[cluster]\n"
            'Name = "restart-bench"\n'
            f'Secret = "{self.secret}"\n'
            "NoOfReplicas = 2\n"
            f'DataMemory = "{data_memory}M"\n'
            f'MinDiskWriteSpeed = "{a.min_speed}"\n'
            f'MaxDiskWriteSpeed = "{a.max_speed}"\n'
            "AllowPasswordlessRoot = true\n\n"
            f'[[ndb_mgmd]]\nNodeId = {MGMD_NODE_ID}\nHostName = "127.0.0.1"\nPortNumber = {self.mgm_port}\n\n'
        )
        for n in DATA_NODES:
            text += f'[[ndbd]]\nNodeId = {n}\nHostName = "127.0.0.1"\nServerPort = {self.server_ports[n]}\n\n'
        for n in SQL_NODES:
            text += f'[[mysqld]]\nNodeId = {n}\nHostName = "127.0.0.1"\nPort = {self.mysql_ports[n]}\n\n'
        with open(self.config_path, "w") as f:
            f.write(text)

    def log_path(self, node):
        return os.path.join(self.dir, f"node-{node}.log")

    def spawn(self, node):
        mgm = f"127.0.0.1:{self.mgm_port}"
        node_dir = os.path.join(self.dir, f"node-{node}")
        os.makedirs(node_dir, exist_ok=True)
        if node == MGMD_NODE_ID:
            argv = ["mgmd", "--node-id", str(node), "--config", self.config_path, "--data-dir", node_dir]
        elif node in DATA_NODES:
            argv = ["datad", "--node-id", str(node), "--mgm", mgm, "--secret-file", self.config_path, "--data-dir", node_dir]
        else:
            argv = ["sqld", "--node-id", str(node), "--mgm", mgm, "--secret-file", self.config_path]
        log = open(self.log_path(node), "ab")
        env = dict(os.environ, RUST_LOG="info,raft=warn")
        # Its own process group, so that the data node's angel and worker are killed together.
        self.processes[node] = subprocess.Popen(
            [self.cairn] + argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
        )

    def stop_all(self):
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        self.processes.clear()

    def mgm(self, command, timeout=600):
        result = subprocess.run(
            [self.cairn, "mgm", "-c", f"127.0.0.1:{self.mgm_port}", "--config", self.config_path, "-e", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return (result.stdout + result.stderr).strip()

    def mysql(self, node, sql, timeout=600):
        result = subprocess.run(
            ["mysql", "-h", "127.0.0.1", "-P", str(self.mysql_ports[node]), "-u", "root", "--batch", "--skip-column-names", "-e", sql],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sqld {node}: {sql[:80]!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def started(self, node):
        return self.mgm(f"{node} STATUS", timeout=30).startswith(f"Node {node}: started")

    def serving(self):
        """A point select answers through every SQL node."""
        try:
            return all(self.mysql(n, "SELECT id FROM rb.mail WHERE id = 1", timeout=10) == "1" for n in SQL_NODES)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def wait(self, what, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.1)

    def start_cluster(self):
        self.write_config()
        self.spawn(MGMD_NODE_ID)
        time.sleep(0.5)
        for n in DATA_NODES + SQL_NODES:
            self.spawn(n)
        self.wait("every data node started", lambda: all(self.started(n) for n in DATA_NODES), 120)

        def sql_up():
            try:
                return all(self.mysql(n, "SELECT 1", timeout=10) == "1" for n in SQL_NODES)
            except (RuntimeError, subprocess.TimeoutExpired):
                return False

        self.wait("every SQL node to answer", sql_up, 120)

    # ----- measurements -----

    def data_node_rss_mib(self):
        """RSS of each data node's worker (the angel's child) in MiB, from /proc."""
        out = {}
        for n in DATA_NODES:
            angel = self.processes[n].pid
            children = subprocess.run(["pgrep", "-P", str(angel)], capture_output=True, text=True).stdout.split()
            total = 0
            for pid in children:
                try:
                    with open(f"/proc/{pid}/status") as f:
                        total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    pass
            out[n] = total / 1024
        return out

    def log_events(self, node, message, since=0):
        """The fields of every line of node's log holding `message`, from byte `since` on."""
        with open(self.log_path(node), "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        events = []
        for line in text.splitlines():
            if message in line:
                clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
                events.append(dict(re.findall(r"(\w+)=(\S+)", clean)))
        return events

    def log_size(self, node):
        return os.path.getsize(self.log_path(node))

    def load(self):
        a = self.args
        row_bytes = a.row_bytes
        rows = a.data_mib * (1 << 20) // row_bytes
        self.rows = rows
        self.mysql(SQL_NODES[0], "CREATE DATABASE rb")
        # Account data as an email system keeps it: a key, the account, and a body of settings.
        self.mysql(
            SQL_NODES[0],
            "CREATE TABLE rb.mail (id BIGINT UNSIGNED PRIMARY KEY, account VARCHAR(64) NOT NULL, body VARCHAR(4000) NOT NULL)",
        )
        body_len = max(row_bytes - 48, 16)
        filler = "abcdefghijklmnopqrstuvwxyz0123456789" * (body_len // 36 + 2)
        errors = []

        def feed(k):
            sqld = SQL_NODES[k % len(SQL_NODES)]
            client = subprocess.Popen(
                ["mysql", "-h", "127.0.0.1", "-P", str(self.mysql_ports[sqld]), "-u", "root", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            first = 1 + k
            batch = []
            try:
                for id in range(first, rows + 1, a.connections):
                    # Every row differs (its id and a rotation of the filler): nothing is shared.
                    shift = id % 36
                    batch.append(f"({id},'user{id}@example.org','{filler[shift:shift + body_len]}')")
                    if len(batch) == a.batch_rows:
                        client.stdin.write(("INSERT INTO rb.mail VALUES " + ",".join(batch) + ";\n").encode())
                        batch.clear()
                if batch:
                    client.stdin.write(("INSERT INTO rb.mail VALUES " + ",".join(batch) + ";\n").encode())
                client.stdin.close()
            except BrokenPipeError:
                pass
            if client.wait() != 0:
                errors.append(client.stderr.read().decode().strip())

        started = time.monotonic()
        threads = [threading.Thread(target=feed, args=(k,)) for k in range(a.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        if errors:
            raise RuntimeError("loading failed: " + "; ".join(errors))
        mib = rows * row_bytes / (1 << 20)
        print(f"loaded {rows} rows of about {row_bytes} bytes ({mib:.0f} MiB of row data) in {elapsed:.1f} s: "
              f"{rows / elapsed:.0f} rows/s, {mib / elapsed:.1f} MiB/s over {a.connections} connections")

    def wait_full_checkpoint(self):
        """Waits until both data nodes logged a checkpoint holding every loaded row."""
        started = time.monotonic()

        def full(n):
            return any(int(e.get("rows", 0)) >= self.rows for e in self.log_events(n, "local checkpoint completed"))

        self.wait("a checkpoint holding every row on both data nodes", lambda: all(full(n) for n in DATA_NODES), 3600)
        print(f"both data nodes wrote a checkpoint of every row {time.monotonic() - started:.1f} s after the load ended")
        for n in DATA_NODES:
            e = [e for e in self.log_events(n, "local checkpoint completed") if int(e.get("rows", 0)) >= self.rows][0]
            print(f"  node {n}: checkpoint {e.get('checkpoint')}: {int(e['bytes']) / (1 << 20):.0f} MiB, "
                  f"{int(e['elapsed_ms']) / 1000:.1f} s, {e.get('mib_per_s')} MiB/s "
                  f"(MinDiskWriteSpeed {self.args.min_speed}, MaxDiskWriteSpeed {self.args.max_speed})")

    def timed_restart(self, label, command, nodes):
        marks = {n: self.log_size(n) for n in nodes}
        started = time.monotonic()
        out = self.mgm(command)
        answered = time.monotonic() - started
        # A node that reports `started` again after the command returned is back.
        self.wait(f"{label}: every node started", lambda: all(self.started(n) for n in nodes), 3600)
        up = time.monotonic() - started
        self.wait(f"{label}: a point select through every SQL node", self.serving, 600)
        serving = time.monotonic() - started
        print(f"{label} (`{command}`): command answered in {answered:.1f} s, started after {up:.1f} s, "
              f"serving through every SQL node after {serving:.1f} s")
        print("  " + " | ".join(out.splitlines()))
        for n in nodes:
            for message in ("local checkpoint restored", "installed a snapshot from a live replica", "caught up with the leader"):
                for e in self.log_events(n, message, since=marks[n]):
                    detail = ", ".join(f"{k}={v}" for k, v in e.items() if k in ("rows", "bytes", "elapsed_ms", "mib_per_s", "applied", "index"))
                    print(f"  node {n}: {message}: {detail}")
            phases = self.log_events(n, "start phase completed", since=marks[n])
            if phases:
                print(f"  node {n}: start phases completed: {', '.join(p.get('phase', '?') for p in phases)}")
        return serving

    # ----- checkpoint pacing under load -----

    def lcp_bytes(self, node):
        """Bytes in each of node's checkpoint directories now: {directory: bytes}."""
        root = os.path.join(self.dir, f"node-{node}", "lcp")
        sizes = {}
        for entry in os.scandir(root) if os.path.isdir(root) else []:
            total = 0
            for f in os.scandir(entry.path) if entry.is_dir() else []:
                try:
                    total += f.stat().st_size
                except OSError:
                    pass
            sizes[entry.name] = total
        return sizes

    def loadgen(self, workload, sqld, seconds, connections, setup=False, extra=()):
        url = f"mysql://root@127.0.0.1:{self.mysql_ports[sqld]}/"
        argv = [self.args.loadgen, "--url", url, "--workload", workload, "--connections", str(connections),
                "--seconds", str(seconds), "--warmup", "1", "--rows", "100000", "--json", "--threads", "2",
                "--setup" if setup else "--no-setup", *extra]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def report(process, what):
        out, err = process.communicate(timeout=600)
        import json
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if not lines:
            raise RuntimeError(f"cairn-loadgen ({what}) printed no report: {err.strip()[-400:]}")
        r = json.loads(lines[-1])
        return r

    @staticmethod
    def latency(r):
        lat = r["latency_us"]
        return (f"{r['qps']:.0f} ops/s, p50 {lat['p50']:.0f} us, "
                f"p99 {lat['p99']:.0f} us, max {lat['max']:.0f} us, errors {r.get('errors', 0)}")

    def bulk_writer(self, k, parts, stop, written):
        """Inserts new rows (ids above the loaded ones) in 100-row INSERTs until `stop` is set."""
        body_len = max(self.args.row_bytes - 48, 16)
        filler = "abcdefghijklmnopqrstuvwxyz0123456789" * (body_len // 36 + 2)
        client = subprocess.Popen(
            ["mysql", "-h", "127.0.0.1", "-P", str(self.mysql_ports[SQL_NODES[1]]), "-u", "root", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        id, count = self.rows + 1 + k, 0
        try:
            while not stop.is_set():
                batch = []
                for _ in range(100):
                    batch.append(f"({id},'user{id}@example.org','{filler[id % 36:id % 36 + body_len]}')")
                    id += parts
                client.stdin.write(("INSERT INTO rb.mail VALUES " + ",".join(batch) + ";\n").encode())
                client.stdin.flush()
                count += 100
            client.stdin.close()
        except BrokenPipeError:
            pass
        client.wait()
        written.append(count)

    def wait_checkpoints_idle(self, quiet_seconds=5):
        """Waits until no checkpoint directory of either node grew for `quiet_seconds`."""
        last, since = None, time.monotonic()
        deadline = time.monotonic() + 1800
        while time.monotonic() - since < quiet_seconds:
            now = [self.lcp_bytes(n) for n in DATA_NODES]
            if now != last:
                last, since = now, time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError("checkpoints never went quiet")
            time.sleep(0.5)

    def throttle(self):
        """Point-select latency without and with a checkpoint running under a write load, and
        the rate the checkpoint actually wrote at meanwhile."""
        a = self.args
        self.report(self.loadgen("point-select", SQL_NODES[0], 1, 1, setup=True), "point-select setup")
        self.wait_checkpoints_idle()
        base = self.report(self.loadgen("point-select", SQL_NODES[0], a.window, 8), "point-select alone")
        print(f"point-select, no write load, no checkpoint running: {self.latency(base)}")
        marks = {n: self.log_size(n) for n in DATA_NODES}
        # The write load: multi-row INSERTs of new rows through the other SQL node, enough to
        # start a checkpoint (of the whole store) within a second and keep it busy.
        stop_writes = threading.Event()
        written_rows = []
        writers = [threading.Thread(target=self.bulk_writer, args=(k, 2, stop_writes, written_rows)) for k in range(2)]
        writes_started = time.monotonic()
        for w in writers:
            w.start()
        time.sleep(3)
        before = [self.lcp_bytes(n) for n in DATA_NODES]
        t0 = time.monotonic()
        reads = self.loadgen("point-select", SQL_NODES[0], a.window, 8)
        read_report = self.report(reads, "point-select under writes")
        after = [self.lcp_bytes(n) for n in DATA_NODES]
        window = time.monotonic() - t0
        stop_writes.set()
        for w in writers:
            w.join()
        write_seconds = time.monotonic() - writes_started
        print(f"point-select while inserts run and checkpoints write: {self.latency(read_report)}")
        rows = sum(written_rows)
        print(f"write load meanwhile: {rows} rows of {a.row_bytes} bytes in {write_seconds:.1f} s "
              f"({rows * a.row_bytes / write_seconds / (1 << 20):.1f} MiB/s, 100-row INSERTs over 2 connections)")
        for k, n in enumerate(DATA_NODES):
            # Bytes written into checkpoint directories during the window (a directory pruned
            # meanwhile was complete before it, so it wrote nothing in the window).
            written = sum(max(after[k].get(d, 0) - before[k].get(d, 0), 0) for d in after[k])
            print(f"  node {n}: checkpoint files grew {written / (1 << 20):.1f} MiB in {window:.1f} s = "
                  f"{written / window / (1 << 20):.1f} MiB/s (MinDiskWriteSpeed {a.min_speed}, MaxDiskWriteSpeed {a.max_speed})")
        self.wait_checkpoints_idle()
        for n in DATA_NODES:
            for e in self.log_events(n, "local checkpoint completed", since=marks[n]):
                print(f"  node {n}: checkpoint {e.get('checkpoint')} completed: {int(e['bytes']) / (1 << 20):.0f} MiB, "
                      f"{int(e['elapsed_ms']) / 1000:.1f} s, {e.get('mib_per_s')} MiB/s")

    def run(self):
        a = self.args
        print(f"cluster under {self.dir}; binary {self.cairn}")
        self.start_cluster()
        self.load()
        rss = self.data_node_rss_mib()
        print("data node RSS after the load: " + ", ".join(f"node {n}: {m:.0f} MiB" for n, m in rss.items()))
        self.wait_full_checkpoint()
        results = {}
        if "node" in a.steps:
            results["node restart"] = self.timed_restart("node restart", "2 RESTART", [2])
        if "initial" in a.steps:
            results["initial node restart"] = self.timed_restart("initial node restart", "2 RESTART -i", [2])
        if "system" in a.steps:
            results["system restart"] = self.timed_restart("system restart", "ALL RESTART", list(DATA_NODES))
        if "throttle" in a.steps:
            self.throttle()
        rss = self.data_node_rss_mib()
        print("data node RSS at the end: " + ", ".join(f"node {n}: {m:.0f} MiB" for n, m in rss.items()))
        count = int(self.mysql(SQL_NODES[0], f"SELECT COUNT(*) FROM rb.mail WHERE id <= {self.rows}"))
        print(f"loaded rows after the restarts: {count} (loaded {self.rows})")
        if count != self.rows:
            raise RuntimeError(f"lost rows: {count} of {self.rows}")
        print("summary: " + ", ".join(f"{k} {v:.1f} s" for k, v in results.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cairn", default="target/release/cairn", help="the cairn binary (default: %(default)s)")
    parser.add_argument("--data-mib", type=int, default=1024, help="MiB of row data per data node (default: %(default)s)")
    parser.add_argument("--row-bytes", type=int, default=1024, help="approximate bytes per row (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=4, help="loading connections (default: %(default)s)")
    parser.add_argument("--batch-rows", type=int, default=100, help="rows per INSERT (default: %(default)s)")
    parser.add_argument("--min-speed", default="10M", help="MinDiskWriteSpeed (default: NDB's %(default)s)")
    parser.add_argument("--max-speed", default="20M", help="MaxDiskWriteSpeed (default: NDB's %(default)s)")
    parser.add_argument("--steps", default="node,initial,system,throttle", help="which steps to run (default: %(default)s)")
    parser.add_argument("--loadgen", default="target/release/cairn-loadgen", help="for the throttle step (default: %(default)s)")
    parser.add_argument("--window", type=int, default=15, help="seconds of each latency window of the throttle step (default: %(default)s)")
    parser.add_argument("--dir", help="cluster directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster directory (logs, data) at the end")
    args = parser.parse_args()
    parse_bytes(args.min_speed)
    parse_bytes(args.max_speed)
    if shutil.which("mysql") is None:
        sys.exit("restart_bench: the mysql command-line client is needed (apt-get install mariadb-client)")
    if not os.path.exists(args.cairn):
        sys.exit(f"restart_bench: {args.cairn} does not exist: cargo build --release --bin cairn")
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.run()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"restart_bench: {e}", file=sys.stderr)
        print(f"logs are under {bench.dir}", file=sys.stderr)
        args.keep = True
        raise SystemExit(1)
    finally:
        bench.stop_all()
        if not args.keep:
            shutil.rmtree(bench.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
