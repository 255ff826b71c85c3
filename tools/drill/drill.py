#!/usr/bin/env python3
"""duet failover drill: kill -9 the serving duetd of a pair and time every durable handle's
reconnect on the partner.

Builds its own namespace lab (tools/lab/lab.sh, prefix --prefix), two nodes "a" and "b"
(pair init / join, shared share directory, shared-dir storage role), and runs an
independent SMB client (Python smbprotocol from PyPI, in a venv) in the client namespace.
Each round the client opens --handles durable handles through the VIP (v1 and v2, batch
oplock and RWH lease, in turn), writes and flushes known data; the drill kills the
serving duetd with SIGKILL; the client reconnects every handle (DHnC / DH2C) as soon as
the VIP answers again, reads the data back and compares it. The killed node is restarted
and rejoins as passive; the next round kills the other node.

Prints failover time (kill to reconnected handle) p50/p99/max, handles reconnected, bytes
verified; writes the figures as JSON with --json. Exit status 0 only if every handle
reconnected and every byte read back equal. Needs root (namespaces, VIP, raw sockets).

With --scenarios it then checks the pair's other behaviours: admin changes mirrored and
refused on the passive node, a planned switchover with durable handles, a cut heartbeat
cable (exactly one node serves), forged frames refused and counted.

Usage: drill.py [--duetd BIN] [--duetctl BIN] [--handles N] [--rounds K] [--prefix P]
                [--venv DIR] [--json FILE] [--keep] [--scenarios]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VIP = "192.0.2.100"
USER, PASSWORD = "drill", "Drill-Pass-7"


def ensure_smbprotocol(venv):
    """Re-runs this script under a venv that has smbprotocol, creating it if needed."""
    try:
        import smbprotocol  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("DUET_DRILL_IN_VENV"):
        sys.exit("smbprotocol is still missing inside the venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run(
        [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "smbprotocol==1.17.0"],
        check=True,
    )
    env = dict(os.environ, DUET_DRILL_IN_VENV="1")
    os.execve(py, [py] + sys.argv, env)


# ---------------------------------------------------------------- client side


def client_main(args):
    """Runs in the client namespace; takes commands on stdin, answers JSON on stdout."""
    from smbprotocol.connection import Connection
    from smbprotocol.create_contexts import (
        CreateContextName,
        SMB2CreateContextRequest,
        SMB2CreateDurableHandleReconnect,
        SMB2CreateDurableHandleReconnectV2,
        SMB2CreateDurableHandleRequest,
        SMB2CreateDurableHandleRequestV2,
        SMB2CreateDurableHandleResponse,
        SMB2CreateDurableHandleResponseV2,
        SMB2CreateRequestLeaseV2,
    )
    from smbprotocol.open import (
        CreateDisposition,
        CreateOptions,
        FilePipePrinterAccessMask,
        ImpersonationLevel,
        Open,
        RequestedOplockLevel,
        ShareAccess,
    )
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    BATCH = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH
    LEASE = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE
    RW = (
        FilePipePrinterAccessMask.FILE_READ_DATA
        | FilePipePrinterAccessMask.FILE_WRITE_DATA
        | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
        | FilePipePrinterAccessMask.SYNCHRONIZE
    )
    SHARE_ALL = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE

    def ctx(name, data):
        c = SMB2CreateContextRequest()
        c["buffer_name"] = name
        c["buffer_data"] = data
        return c

    def lease_ctx(key, state):
        lq = SMB2CreateRequestLeaseV2()
        lq["lease_key"] = key
        lq["lease_state"] = state
        lq["epoch"] = b"\x00\x00"
        lq["parent_lease_key"] = b"\x00" * 16
        return ctx(CreateContextName.SMB2_CREATE_REQUEST_LEASE_V2, lq)

    def connect(client_guid, timeout):
        conn = Connection(client_guid, VIP, 445)
        conn.connect(timeout=timeout)
        sess = Session(conn, USER, PASSWORD, require_encryption=False)
        sess.connect()
        tree = TreeConnect(sess, rf"\\{VIP}\share")
        tree.connect()
        return conn, tree

    def create(tree, name, contexts, oplock):
        o = Open(tree, name)
        resp = o.create(
            ImpersonationLevel.Impersonation,
            RW,
            0,
            SHARE_ALL,
            CreateDisposition.FILE_OPEN_IF,
            CreateOptions.FILE_NON_DIRECTORY_FILE,
            create_contexts=contexts,
            oplock_level=oplock,
        )
        return o, resp or []

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    client_guid = uuid.uuid4()
    conn = None
    handles = []
    old_port = None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "open":
            rnd, n = int(cmd[1]), int(cmd[2])
            conn, tree = connect(client_guid, 10)
            handles = []
            for i in range(n):
                kind = ["v1-batch", "v2-lease", "v2-batch", "v1-lease"][i % 4]
                name = f"drill-r{rnd}-h{i}.bin"
                h = {"name": name, "kind": kind, "lease_key": None, "create_guid": None}
                contexts = []
                if kind.endswith("lease"):
                    h["lease_key"] = os.urandom(16)
                    contexts.append(lease_ctx(h["lease_key"], 0x7))
                    oplock = LEASE
                else:
                    oplock = BATCH
                if kind.startswith("v1"):
                    contexts.append(ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST, SMB2CreateDurableHandleRequest()))
                else:
                    dq = SMB2CreateDurableHandleRequestV2()
                    dq["timeout"] = 120000
                    h["create_guid"] = uuid.uuid4()
                    dq["create_guid"] = h["create_guid"]
                    contexts.append(ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2, dq))
                o, resp = create(tree, name, contexts, oplock)
                granted = [r for r in resp if isinstance(r, (SMB2CreateDurableHandleResponse, SMB2CreateDurableHandleResponseV2))]
                if not granted:
                    raise RuntimeError(f"{name}: durable handle not granted")
                data = os.urandom(args.size)
                o.write(data, 0)
                o.flush()
                h["file_id"] = o.file_id
                h["data"] = data
                handles.append(h)
            try:
                old_port = conn.transport._sock.getsockname()[1]
            except Exception:  # noqa: BLE001 - only for the box-death check
                old_port = None
            say({"ready": n})
        elif cmd[0] == "killed":
            t_kill = float(cmd[1])
            watch = {}
            if len(cmd) > 2 and cmd[2] == "watch" and old_port is not None:
                # Box death: nothing of the dead box answers, so the old TCP connection
                # only ends when the partner's tickle ACK draws a reset. Watch it in this
                # namespace's TCP table (hex local port, state 01 = ESTABLISHED).
                def watcher(port=old_port, t0=t_kill, out=watch):
                    needle = f":{port:04X} "
                    while time.monotonic() - t0 < 10:
                        alive = False
                        with open("/proc/net/tcp") as f:
                            for row in f.readlines()[1:]:
                                parts = row.split()
                                if (parts[1] + " ").endswith(needle) and parts[3] == "01":
                                    alive = True
                        if not alive:
                            out["old_connection_reset_s"] = time.monotonic() - t0
                            return
                        time.sleep(0.005)
                import threading  # noqa: PLC0415

                wt = threading.Thread(target=watcher, daemon=True)
                wt.start()
            else:
                wt = None
            if wt is not None:
                # The check is on the old connection: leave it alone until it ends.
                wt.join(timeout=10)
            if conn is not None:
                try:
                    conn.disconnect(close=False)
                except Exception:
                    pass
            deadline = time.monotonic() + args.give_up
            results = []
            pending = list(handles)
            attempts = 0
            while pending and time.monotonic() < deadline:
                attempts += 1
                try:
                    conn, tree = connect(client_guid, 0.5)
                except Exception:
                    time.sleep(0.02)
                    continue
                try:
                    while pending:
                        h = pending[0]
                        contexts = []
                        oplock = BATCH
                        if h["lease_key"]:
                            contexts.append(lease_ctx(h["lease_key"], 0))
                            oplock = LEASE
                        if h["kind"].startswith("v1"):
                            rc = SMB2CreateDurableHandleReconnect()
                            rc["data"] = h["file_id"]
                            contexts.append(ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_RECONNECT, rc))
                        else:
                            rc = SMB2CreateDurableHandleReconnectV2()
                            rc["file_id"] = h["file_id"]
                            rc["create_guid"] = h["create_guid"]
                            contexts.append(ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2, rc))
                        o, _ = create(tree, h["name"], contexts, oplock)
                        t = time.monotonic() - t_kill
                        back = o.read(0, len(h["data"]))
                        o.close()
                        results.append(
                            {
                                "name": h["name"],
                                "kind": h["kind"],
                                "reconnect_s": t,
                                "bytes": len(h["data"]),
                                "equal": back == h["data"],
                            }
                        )
                        pending.pop(0)
                except Exception as e:  # noqa: BLE001 - the drill reports, it does not stop
                    results.append({"name": pending[0]["name"], "error": repr(e)[:300]})
                    pending.pop(0)
            for h in pending:
                results.append({"name": h["name"], "error": "gave up"})
            try:
                conn.disconnect()
            except Exception:
                pass
            say({"results": results, "attempts": attempts, **watch})
        elif cmd[0] == "quit":
            return


# ---------------------------------------------------------------- driver side


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, **kw)


class Pair:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.prefix = args.prefix
        self.procs = {}
        self.logs = {}

    def ns(self, node):
        return f"{self.prefix}-{node}"

    def setup(self):
        env = dict(os.environ, DUET_LAB_PREFIX=self.prefix)
        sh(os.path.join(ROOT, "tools/lab/lab.sh"), "up", env=env, stdout=subprocess.DEVNULL)
        self.share = os.path.join(self.work, "share")
        self.lock = os.path.join(self.work, "storage")
        os.makedirs(self.share)
        os.makedirs(self.lock)
        for node, me, partner in (("a", "192.0.2.11", "192.0.2.12"), ("b", "192.0.2.12", "192.0.2.11")):
            with open(os.path.join(self.work, f"{node}.toml"), "w") as f:
                f.write(
                    f"""[board]
name = "drill-{node}"
[smb]
listen = ["0.0.0.0:445"]
signing_required = false
[network]
data_nic = "eth0"
heartbeat_nic = "eth1"
[cluster]
node = "{node}"
data_addr = "{me}"
partner_data_addr = "{partner}"
vip = "{VIP}/24"
tiebreaker = "192.0.2.1"
[cluster.storage]
driver = "shared-dir"
dir = "{self.lock}"
"""
                )
        a, b = self.state("a"), self.state("b")
        out = subprocess.run([self.args.duetctl, "--state", a, "pair", "init"], check=True, capture_output=True, text=True).stdout
        line = next(l for l in out.splitlines() if "duet-pair-1" in l)
        join = line[line.index("duet-pair-1"):].split()
        subprocess.run([self.args.duetctl, "--state", a, "user", "add", USER], input=PASSWORD + "\n", text=True, check=True)
        sh(self.args.duetctl, "--state", a, "share", "add", "share", self.share)
        sh(self.args.duetctl, "--state", b, "pair", "join", *join, stdout=subprocess.DEVNULL)

    def state(self, node):
        return os.path.join(self.work, f"state-{node}")

    def start(self, node):
        log = open(os.path.join(self.work, f"duetd-{node}.log"), "ab")
        self.logs[node] = log.name
        self.procs[node] = subprocess.Popen(
            [
                "ip", "netns", "exec", self.ns(node), self.args.duetd, "run",
                "--board", os.path.join(self.work, f"{node}.toml"),
                "--state", self.state(node),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")),
        )

    def kill9(self, node):
        p = self.procs.pop(node)
        # `ip netns exec` execs duetd: the pid is duetd's own.
        os.kill(p.pid, signal.SIGKILL)
        p.wait()

    def status(self, node):
        r = subprocess.run([self.args.duetctl, "--state", self.state(node), "cluster", "status"], capture_output=True, text=True)
        if r.returncode != 0:
            return {}
        return dict(l.split(": ", 1) for l in r.stdout.splitlines() if ": " in l)

    def wait_synchronous(self, timeout=30):
        """Until one node serves with synchronous mirroring and the other is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = {n: self.status(n) for n in ("a", "b")}
            for act, pas in (("a", "b"), ("b", "a")):
                # Healthy: mirroring synchronously, and each node hears the other on both
                # paths (a passive node that never heard its partner on the data network
                # cannot tell a dead partner from a cut cable, and rightly does not take
                # over: see duet-cluster's rule T1).
                if (
                    s[act].get("serving") == "true"
                    and s[act].get("mirror") == "Synchronous"
                    and s[pas].get("in_sync") == "true"
                    and all(
                        s[n].get("data_path_up") == "true" and s[n].get("link_up") == "true" and s[n].get("tiebreaker_ok") == "true"
                        for n in (act, pas)
                    )
                ):
                    return act
            for n in ("a", "b"):
                p = self.procs.get(n)
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"duetd {n} exited with {p.returncode}; see {self.logs[n]}")
            time.sleep(0.1)
        raise RuntimeError(f"the pair did not become synchronous: {s}")

    def teardown(self):
        for n in list(self.procs):
            try:
                self.kill9(n)
            except Exception:
                pass
        if not self.args.keep:
            env = dict(os.environ, DUET_LAB_PREFIX=self.prefix)
            subprocess.run([os.path.join(ROOT, "tools/lab/lab.sh"), "down"], env=env, stdout=subprocess.DEVNULL)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def scenarios(args, pair, ask, client):
    """The pair's behaviours beyond kill -9: mirroring of admin changes, a passive node
    refusing local changes, planned switchover with durable handles, a cut heartbeat cable
    (exactly one node serves), and forged frames (refused and counted)."""
    active = pair.wait_synchronous()
    passive = "b" if active == "a" else "a"
    ctl = args.duetctl

    # Admin changes on the serving node reach the partner's store before duetctl returns.
    subprocess.run([ctl, "--state", pair.state(active), "user", "add", "mirrored"], input="Mirror-Pass-3\n", text=True, check=True)
    users = subprocess.run([ctl, "--state", pair.state(passive), "user", "list"], capture_output=True, text=True, check=True).stdout
    check("mirrored" in users, "a user added on the serving node is in the passive node's store")
    r = subprocess.run([ctl, "--state", pair.state(passive), "user", "add", "local"], input="Local-Pass-3\n", text=True, capture_output=True)
    check(r.returncode != 0 and "does not serve" in r.stderr, f"the passive node refuses local changes ({r.stderr.strip()})")

    # Planned switchover: every durable handle comes back on the partner.
    ask(f"open 100 {max(4, args.handles)}")
    t0 = time.monotonic()
    out = subprocess.run([ctl, "--state", pair.state(active), "cluster", "switchover"], capture_output=True, text=True)
    check(out.returncode == 0, f"switchover accepted ({out.stdout.strip() or out.stderr.strip()})")
    # The client reconnects once it sees its old connection end, as real clients do.
    client.stdin.write(f"killed {t0} watch\n")
    client.stdin.flush()
    reply = json.loads(client.stdout.readline() or "{}")
    res = reply.get("results", [])
    back = [r for r in res if "reconnect_s" in r and r["equal"]]
    check(len(back) == len(res) and res, f"switchover: {len(back)}/{len(res)} durable handles reconnected on the partner with their data, in {max(r['reconnect_s'] for r in back) if back else float('nan'):.3f} s (old connection ended after {reply.get('old_connection_reset_s')} s)")
    active = pair.wait_synchronous()
    check(active == passive, f"node {passive} serves after the switchover")
    passive = "b" if active == "a" else "a"

    # Cut only the heartbeat cable: exactly one node serves, the whole time.
    subprocess.run(["ip", "-n", pair.ns(active), "link", "set", "eth1", "down"], check=True)
    both, none_at_end = 0, False
    deadline = time.monotonic() + 4
    serving = []
    while time.monotonic() < deadline:
        serving = [n for n in ("a", "b") if pair.status(n).get("serving") == "true"]
        if len(serving) > 1:
            both += 1
        time.sleep(0.1)
    none_at_end = not serving
    check(both == 0 and not none_at_end, f"cable cut: exactly one node serves ({serving})")
    vips = [n for n in ("a", "b") if VIP in subprocess.run(["ip", "-n", pair.ns(n), "addr", "show", "eth0"], capture_output=True, text=True).stdout]
    check(vips == serving, f"cable cut: the VIP is on the serving node only ({vips})")
    subprocess.run(["ip", "-n", pair.ns(active), "link", "set", "eth1", "up"], check=True)
    pair.wait_synchronous(timeout=20)
    check(True, "cable back: the pair is synchronous again")

    # The serving node loses the cable and its data NIC: it steps down, the partner serves.
    old = active
    subprocess.run(["ip", "-n", pair.ns(old), "link", "set", "eth1", "down"], check=True)
    subprocess.run(["ip", "-n", pair.ns(old), "link", "set", "eth0", "down"], check=True)
    deadline = time.monotonic() + 6
    both = 0
    while time.monotonic() < deadline:
        serving = [n for n in ("a", "b") if pair.status(n).get("serving") == "true"]
        both += len(serving) > 1
        if serving == [passive]:
            break
        time.sleep(0.05)
    check(both == 0 and serving == [passive], f"cable and data NIC of the serving node down: it steps down, the partner serves ({serving})")
    for nic in ("eth0", "eth1"):
        subprocess.run(["ip", "-n", pair.ns(old), "link", "set", nic, "up"], check=True)
    active = pair.wait_synchronous(timeout=20)
    passive = "b" if active == "a" else "a"
    check(active != old, f"node {old} came back as passive")

    # Gateway (tie-breaker) gone and the cable cut: no one may serve (availability is given
    # up, never exclusivity); back again, the pair sorts itself out.
    sw = f"{pair.prefix}-sw"
    subprocess.run(["ip", "-n", sw, "addr", "del", "192.0.2.1/24", "dev", "br0"], check=True)
    subprocess.run(["ip", "-n", pair.ns(active), "link", "set", "eth1", "down"], check=True)
    deadline = time.monotonic() + 4
    both = 0
    while time.monotonic() < deadline:
        serving = [n for n in ("a", "b") if pair.status(n).get("serving") == "true"]
        both += len(serving) > 1
        time.sleep(0.1)
    check(both == 0 and serving == [], f"tie-breaker gone and cable cut: no node serves ({serving})")
    subprocess.run(["ip", "-n", sw, "addr", "add", "192.0.2.1/24", "dev", "br0"], check=True)
    subprocess.run(["ip", "-n", pair.ns(active), "link", "set", "eth1", "up"], check=True)
    active = pair.wait_synchronous(timeout=20)
    passive = "b" if active == "a" else "a"
    check(True, f"tie-breaker and cable back: node {active} serves, synchronous again")

    # Forged and replayed frames on the data path are refused and counted.
    before = int(pair.status(active).get("frames_refused", "0"))
    forged = b"DC" + bytes([1, 1, 1]) + os.urandom(60)
    payload = forged.hex()
    subprocess.run(
        ["ip", "netns", "exec", pair.ns(passive), sys.executable, "-c",
         "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
         f"[s.sendto(bytes.fromhex('{payload}'),('{'192.0.2.11' if active == 'a' else '192.0.2.12'}',7400)) for _ in range(20)]"],
        check=True,
    )
    time.sleep(0.3)
    after = int(pair.status(active).get("frames_refused", "0"))
    check(after >= before + 20, f"forged frames refused and counted ({after - before})")
    check(pair.wait_synchronous() == active, "forged frames changed nothing")

    # Box death: the serving box's NICs go dark before its duetd dies, so nothing of it
    # answers the client (no FIN, no reset). The partner's tickle ACK must end the client's
    # old connection at once, and the handles come back on the partner.
    active = pair.wait_synchronous()
    passive = "b" if active == "a" else "a"
    ask(f"open 200 {max(4, args.handles)}")
    for nic in ("eth0", "eth1"):
        subprocess.run(["ip", "-n", pair.ns(active), "link", "set", nic, "down"], check=True)
    t0 = time.monotonic()
    pair.kill9(active)
    client.stdin.write(f"killed {t0} watch\n")
    client.stdin.flush()
    reply = json.loads(client.stdout.readline() or "{}")
    res = reply.get("results", [])
    back = [r for r in res if "reconnect_s" in r and r["equal"]]
    reset = reply.get("old_connection_reset_s")
    check(reset is not None and reset < 2.0, f"box death: the partner's tickle ACK reset the client's old connection after {reset} s")
    check(len(back) == len(res) and res, f"box death: {len(back)}/{len(res)} durable handles back on the partner with their data")
    for nic in ("eth0", "eth1"):
        subprocess.run(["ip", "-n", pair.ns(active), "link", "set", nic, "up"], check=True)
    pair.start(active)
    active = pair.wait_synchronous(timeout=20)
    passive = "b" if active == "a" else "a"

    # SIGTERM (a clean stop) of the serving node: the VIP leaves with it, the partner serves.
    p = pair.procs.pop(active)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=20)
    has_vip = VIP in subprocess.run(["ip", "-n", pair.ns(active), "addr", "show", "eth0"], capture_output=True, text=True).stdout
    check(p.returncode == 0 and not has_vip, f"SIGTERM: duetd {active} exits cleanly (status {p.returncode}) without the VIP")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pair.status(passive).get("serving") != "true":
        time.sleep(0.05)
    check(pair.status(passive).get("serving") == "true", f"SIGTERM: node {passive} serves")
    pair.start(active)
    check(pair.wait_synchronous(timeout=20) == passive, f"node {active} rejoined as passive")


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def driver_main(args):
    if os.geteuid() != 0:
        sys.exit("drill.py needs root (network namespaces, VIP, raw sockets)")
    work = tempfile.mkdtemp(prefix="duet-drill-")
    pair = Pair(args, work)
    client = None
    all_results = []
    try:
        pair.setup()
        pair.start("a")
        time.sleep(0.3)
        pair.start("b")
        py = sys.executable
        client = subprocess.Popen(
            ["ip", "netns", "exec", f"{args.prefix}-client", py, os.path.abspath(__file__), "--client",
             "--size", str(args.size), "--give-up", str(args.give_up)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, DUET_DRILL_IN_VENV="1"),
        )

        def ask(line):
            client.stdin.write(line + "\n")
            client.stdin.flush()
            reply = client.stdout.readline()
            if not reply:
                raise RuntimeError("the drill client died")
            return json.loads(reply)

        for rnd in range(args.rounds):
            active = pair.wait_synchronous()
            ask(f"open {rnd} {args.handles}")
            t_kill = time.monotonic()
            pair.kill9(active)
            client.stdin.write(f"killed {t_kill}\n")
            client.stdin.flush()
            reply = json.loads(client.stdout.readline() or "{}")
            res = reply.get("results", [])
            for r in res:
                r["round"] = rnd
                r["killed"] = active
            all_results.extend(res)
            ok = [r for r in res if "reconnect_s" in r]
            times = [r["reconnect_s"] for r in ok]
            print(
                f"round {rnd + 1}/{args.rounds}: killed {active}; {len(ok)}/{len(res)} handles back"
                + (f" in {min(times):.3f}-{max(times):.3f} s" if times else "")
                + f" ({reply.get('attempts', 0)} connection attempts)",
                flush=True,
            )
            for r in res:
                if "error" in r:
                    print(f"  {r['name']}: {r['error']}", flush=True)
            pair.start(active)
        pair.wait_synchronous()
        if args.scenarios:
            scenarios(args, pair, ask, client)
        ask_quit = client.stdin
        ask_quit.write("quit\n")
        ask_quit.flush()
    finally:
        if client is not None and client.poll() is None:
            client.kill()
        pair.teardown()

    ok = [r for r in all_results if "reconnect_s" in r]
    times = [r["reconnect_s"] for r in ok]
    verified = sum(r["bytes"] for r in ok if r["equal"])
    written = args.handles * args.rounds * args.size
    unequal = [r for r in ok if not r["equal"]]
    summary = {
        "handles": args.handles * args.rounds,
        "reconnected": len(ok),
        "failover_p50_s": percentile(times, 50),
        "failover_p99_s": percentile(times, 99),
        "failover_max_s": max(times) if times else None,
        "bytes_written_and_flushed": written,
        "bytes_verified": verified,
        "bytes_lost": written - verified,
        "rounds": args.rounds,
    }
    print(
        f"drill: {summary['reconnected']}/{summary['handles']} handles reconnected; "
        f"failover p50 {summary['failover_p50_s']:.3f} s, p99 {summary['failover_p99_s']:.3f} s, "
        f"max {summary['failover_max_s'] or float('nan'):.3f} s; "
        f"{verified}/{written} flushed bytes verified"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "results": all_results}, f, indent=1)
    if args.keep:
        print(f"kept: {work} and lab {args.prefix}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if summary["reconnected"] != summary["handles"] or unequal or verified != written:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duetd", default=os.path.join(ROOT, "target/release/duetd"))
    ap.add_argument("--duetctl", default=os.path.join(ROOT, "target/release/duetctl"))
    ap.add_argument("--handles", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--size", type=int, default=64 * 1024, help="bytes written per handle")
    ap.add_argument("--give-up", type=float, default=30.0, help="seconds before a handle counts as lost")
    ap.add_argument("--prefix", default="drill")
    ap.add_argument("--venv", default=os.path.join(ROOT, "target/drill-venv"))
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--scenarios", action="store_true", help="also switchover, cable cut, forged frames, mirrored admin changes")
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args)
    else:
        ensure_smbprotocol(args.venv)
        driver_main(args)


if __name__ == "__main__":
    main()
