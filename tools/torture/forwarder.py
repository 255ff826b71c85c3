#!/usr/bin/env python3
"""TCP forwarder for smbtorture against a duet pair: every new connection lands on the other node.

Runs in the pair lab's client namespace (tools/torture/pair.sh starts it), listens on
LISTEN (127.0.0.1:PORT there) and forwards each accepted connection to the pair's VIP
(TARGET, 192.0.2.100:445). Before it forwards a new connection while no other forwarded
connection is open, it moves the service to the other node: `duetctl --state ACTIVE
cluster switchover`, then it polls `duetctl --state DIR cluster status` of both nodes until
the other node reports `serving: true` (and, for at most --sync-wait more seconds,
`mirror: Synchronous`, so the next switchover is not refused), and only then connects. So
every reconnect of a durable handle in a test that drops its connection and opens a new
one lands on the partner, which must honour it from the mirrored state.

While other forwarded connections are open the new one goes to the node already serving
(tests that hold two connections at once keep both on one node). A client that closes one
connection and opens the next at once can have its SYN accepted before the forwarder has
seen the old connection's FIN, so a new connection first waits up to --grace seconds for
the others to close before it decides.

Each switch is logged to stderr (number, from, to, time until the partner served); on
SIGTERM/SIGINT the forwarder prints its counts to stderr; --count-file holds
"SWITCHES FAILED ABANDONED" (rewritten after every switch): switchovers done, switchovers
given up (the forwarder then forwards to the node that serves), and handovers the old node
abandoned (it served again after its handover timeout; the forwarder asked again).
Python 3.11 standard library only.

Usage: forwarder.py --listen 127.0.0.1:PORT --target 192.0.2.100:445 --duetctl BIN
                    --node a=STATE_A --node b=STATE_B [--count-file F] [--no-switch]
"""

import argparse
import asyncio
import signal
import sys
import time


def log(msg):
    t = time.time()
    sys.stderr.write(f"forwarder {time.strftime('%H:%M:%S', time.gmtime(t))}.{int(t * 1000) % 1000:03d}: {msg}\n")
    sys.stderr.flush()


class Forwarder:
    def __init__(self, args):
        self.args = args
        self.nodes = dict(n.split("=", 1) for n in args.node)  # name -> state dir
        self.target_host, port = args.target.rsplit(":", 1)
        self.target_port = int(port)
        self.open = 0  # forwarded connections currently open
        self.closed = asyncio.Event()  # set whenever a forwarded connection closes
        self.lock = asyncio.Lock()  # one connection decides (and maybe switches) at a time
        self.switches = 0
        self.failed_switches = 0
        self.abandoned = 0  # handovers the old node gave up (it served again)
        self.connections = 0
        self.unswitched = 0  # connections forwarded while another was open (no switch)
        self.connect_errors = 0
        self.serial = 0

    # ------------------------------------------------------------ cluster control

    async def duetctl(self, node, *cmd, timeout=10.0):
        proc = await asyncio.create_subprocess_exec(
            self.args.duetctl, "--state", self.nodes[node], *cmd,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return 124, "", "timed out"
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def status(self, node):
        rc, out, _ = await self.duetctl(node, "cluster", "status", timeout=5.0)
        if rc != 0:
            return {}
        return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)

    async def statuses(self):
        names = list(self.nodes)
        got = await asyncio.gather(*(self.status(n) for n in names))
        return dict(zip(names, got))

    @staticmethod
    def serving(statuses):
        return [n for n, s in statuses.items() if s.get("serving") == "true"]

    async def switch(self):
        """Moves the service to the other node; returns when it serves (or gives up)."""
        t0 = time.monotonic()
        st = await self.statuses()
        serving = self.serving(st)
        if len(serving) != 1:
            log(f"cannot switch: serving nodes {serving}; forwarding as is")
            self.failed_switches += 1
            return
        old = serving[0]
        new = next(n for n in self.nodes if n != old)
        old_epoch = st[old].get("epoch")
        # A switchover needs the partner in sync; right after the previous switch the old
        # node may still be catching up: retry for a while when it is refused. A handover
        # the old node abandons (it serves again, in a newer epoch) is asked for again.
        deadline = t0 + self.args.switch_timeout
        while True:
            rc, out, err = await self.duetctl(old, "cluster", "switchover")
            if rc != 0:
                if time.monotonic() > deadline:
                    log(f"switchover {old}->{new} refused: {(err or out).strip()}; forwarding to {old}")
                    self.failed_switches += 1
                    return
                await asyncio.sleep(0.02)
                continue
            t_cmd = time.monotonic()
            s = {}
            slow_logged = False
            while True:
                st = await self.statuses()
                s = st[new]
                if s.get("serving") == "true":
                    break
                if not slow_logged and time.monotonic() - t_cmd > 0.5:
                    slow_logged = True
                    keys = ("role", "epoch", "mirror", "in_sync", "last_seq", "acked_seq", "store_acked")
                    log(
                        f"handover {old}->{new} slow (0.5 s): "
                        + "; ".join(f"{n}: " + " ".join(f"{k}={st[n].get(k)}" for k in keys) for n in st)
                    )
                o = st[old]
                if o.get("serving") == "true" and o.get("epoch") != old_epoch:
                    self.abandoned += 1
                    log(
                        f"handover {old}->{new} abandoned: {old} serves again in epoch {o.get('epoch')} "
                        f"after {time.monotonic() - t_cmd:.2f} s ({new}: role {s.get('role')}, "
                        f"epoch {s.get('epoch')}); asking again"
                    )
                    old_epoch = o.get("epoch")
                    break
                if time.monotonic() > deadline:
                    log(f"switchover {old}->{new}: {new} does not serve after {time.monotonic() - t0:.2f} s: {s}")
                    self.failed_switches += 1
                    return
                await asyncio.sleep(0.005)
            if s.get("serving") == "true":
                break
        t_serving = time.monotonic()
        # Then, for a bounded time, until mirroring is synchronous again (so the next
        # switchover is not refused and every acknowledged change is on both nodes).
        sync_deadline = t_serving + self.args.sync_wait
        mirror = s.get("mirror")
        while mirror != "Synchronous" and time.monotonic() < sync_deadline:
            await asyncio.sleep(0.01)
            mirror = (await self.status(new)).get("mirror")
        self.switches += 1
        log(
            f"switch {self.switches}: {old} -> {new}; serving after {1000 * (t_serving - t0):.0f} ms "
            f"(command {1000 * (t_cmd - t0):.0f} ms), mirror {mirror} after {1000 * (time.monotonic() - t0):.0f} ms"
        )
        self.write_count()

    def write_count(self):
        if self.args.count_file:
            with open(self.args.count_file, "w") as f:
                f.write(f"{self.switches} {self.failed_switches} {self.abandoned}\n")

    # ------------------------------------------------------------ forwarding

    async def connect_upstream(self):
        """The VIP may take a moment to answer after a switch (ARP, listener): retry."""
        deadline = time.monotonic() + self.args.connect_timeout
        while True:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), 2.0
                )
            except (OSError, asyncio.TimeoutError) as e:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"connect to {self.args.target}: {e!r}") from e
                await asyncio.sleep(0.02)

    async def handle(self, c_reader, c_writer):
        self.serial += 1
        cid = self.serial
        u_writer = None
        counted = False
        try:
            async with self.lock:
                if self.open > 0 and self.args.grace > 0:
                    # The client may just have closed its previous connection.
                    deadline = time.monotonic() + self.args.grace
                    while self.open > 0 and time.monotonic() < deadline:
                        self.closed.clear()
                        try:
                            await asyncio.wait_for(self.closed.wait(), deadline - time.monotonic())
                        except asyncio.TimeoutError:
                            break
                if self.open == 0 and not self.args.no_switch:
                    await self.switch()
                else:
                    self.unswitched += 1
                    if self.args.verbose:
                        log(f"conn {cid}: {self.open} other connection(s) open, no switch")
                u_reader, u_writer = await self.connect_upstream()
                self.open += 1
                counted = True
                self.connections += 1
            await self.pump(c_reader, c_writer, u_reader, u_writer)
        except Exception as e:  # noqa: BLE001 - one connection's failure must not stop the rest
            self.connect_errors += 1
            log(f"conn {cid}: {e!r}")
        finally:
            for w in (c_writer, u_writer):
                if w is not None:
                    w.close()
            for w in (c_writer, u_writer):
                if w is not None:
                    try:
                        await w.wait_closed()
                    except Exception:  # noqa: BLE001
                        pass
            if counted:
                self.open -= 1
                self.closed.set()

    async def pump(self, c_reader, c_writer, u_reader, u_writer):
        async def copy(reader, writer):
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                return

        a = asyncio.create_task(copy(c_reader, u_writer))
        b = asyncio.create_task(copy(u_reader, c_writer))
        # Either side closing ends the connection (SMB has no half-close).
        done, pending = await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def run(self):
        host, port = self.args.listen.rsplit(":", 1)
        server = await asyncio.start_server(self.handle, host, int(port), reuse_address=True)
        self.write_count()
        log(f"listening on {self.args.listen}, forwarding to {self.args.target}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
        self.write_count()
        log(
            f"{self.switches} switchovers, {self.connections} connections "
            f"({self.unswitched} not switched: another was open, or --no-switch), "
            f"{self.failed_switches} failed switchovers, {self.abandoned} abandoned handovers, "
            f"{self.connect_errors} connection errors"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    ap.add_argument("--target", default="192.0.2.100:445", help="the VIP, HOST:PORT")
    ap.add_argument("--duetctl", required=True)
    ap.add_argument("--node", action="append", required=True, help="NAME=STATE_DIR, twice")
    ap.add_argument("--count-file", help="'SWITCHES FAILED ABANDONED' written here after every switch")
    ap.add_argument("--grace", type=float, default=0.1, help="seconds a new connection waits for others to close")
    ap.add_argument("--switch-timeout", type=float, default=15.0)
    ap.add_argument("--sync-wait", type=float, default=5.0)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--no-switch", action="store_true", help="forward only (for comparison runs)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if len(args.node) != 2:
        ap.error("--node twice: a=STATE_A b=STATE_B")
    asyncio.run(Forwarder(args).run())


if __name__ == "__main__":
    main()
