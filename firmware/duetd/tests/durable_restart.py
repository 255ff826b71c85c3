#!/usr/bin/env python3
"""Acceptance test of issue 3: durable handles outlive `kill -9` of duetd.

An independent client (Python smbprotocol from PyPI, installed here into a venv) opens
durable handles on a real duetd: a v1 handle (DHnQ) with a batch oplock and a v2 handle
(DH2Q) with an RWH lease. It writes and flushes known data and takes byte-range locks.
duetd is killed with SIGKILL and started again on the same state directory; a new
connection reconnects each handle (DHnC, DH2C) and checks that the oplock or lease came
back, that the locks still hold against another client and release on unlock, and that the
data reads back. Then the variant: another client's conflicting open is refused while a
restored handle lives, and succeeds once the handle's timeout has run out.

Usage: durable_restart.py --duetd BIN --board FILE --state DIR --user U --password P
       [--venv DIR]
The state directory must hold the user and a share named "share". Exit status 0 on
success; any failure raises.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid


def ensure_smbprotocol(venv):
    """Re-runs this script under a venv that has smbprotocol, creating it if needed."""
    try:
        import smbprotocol  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("DURABLE_RESTART_IN_VENV"):
        sys.exit("smbprotocol is still missing inside the venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run(
        [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "smbprotocol==1.17.0"],
        check=True,
    )
    env = dict(os.environ, DURABLE_RESTART_IN_VENV="1")
    os.execve(py, [py] + sys.argv, env)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, args, port):
        self.args = args
        self.port = port
        self.proc = None
        self.log = open(os.path.join(args.state, "..", "duetd-acceptance.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen(
            [
                self.args.duetd,
                "run",
                "--board",
                self.args.board,
                "--state",
                self.args.state,
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "duetd=debug,info")),
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"duetd exited with {self.proc.returncode}; see its log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("duetd did not listen")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill9()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duetd", required=True)
    ap.add_argument("--board", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--venv", default=os.path.join(os.getcwd(), "durable-venv"))
    args = ap.parse_args()
    ensure_smbprotocol(args.venv)

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
        SMB2CreateResponseLeaseV2,
    )
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.open import (
        CreateDisposition,
        CreateOptions,
        FilePipePrinterAccessMask,
        ImpersonationLevel,
        LockFlags,
        Open,
        RequestedOplockLevel,
        ShareAccess,
        SMB2LockElement,
    )
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    STATUS_SHARING_VIOLATION = 0xC0000043
    STATUS_LOCK_NOT_GRANTED = 0xC0000055
    STATUS_RANGE_NOT_LOCKED = 0xC000007E
    STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
    BATCH = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH
    LEASE = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE
    RWH = 0x7
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

    def connect(port, client_guid):
        conn = Connection(client_guid, "127.0.0.1", port)
        conn.connect(timeout=10)
        sess = Session(conn, args.user, args.password, require_encryption=False)
        sess.connect()
        tree = TreeConnect(sess, r"\\127.0.0.1\share")
        tree.connect()
        return conn, tree

    def create(tree, name, contexts, oplock, access=RW, share=SHARE_ALL, disposition=CreateDisposition.FILE_OPEN_IF):
        o = Open(tree, name)
        resp = o.create(
            ImpersonationLevel.Impersonation,
            access,
            0,
            share,
            disposition,
            CreateOptions.FILE_NON_DIRECTORY_FILE,
            create_contexts=contexts,
            oplock_level=oplock,
        )
        return o, resp or []

    def find(resp, kind):
        return [r for r in resp if isinstance(r, kind)]

    def lock(o, offset, length, flags):
        el = SMB2LockElement()
        el["offset"] = offset
        el["length"] = length
        el["flags"] = flags
        return o.lock([el])

    def status_of(fn):
        try:
            fn()
            return 0
        except SMBResponseException as e:
            return e.status

    def check(cond, what):
        if not cond:
            raise AssertionError(what)
        print(f"ok: {what}")

    EXCL_NOW = LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    SHARED_NOW = LockFlags.SMB2_LOCKFLAG_SHARED_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    UNLOCK = LockFlags.SMB2_LOCKFLAG_UNLOCK

    port = free_port()
    daemon = Daemon(args, port)
    daemon.start()
    try:
        client_guid = uuid.uuid4()
        conn1, tree1 = connect(port, client_guid)

        # --- durable v1 with a batch oplock
        v1, r = create(tree1, "v1.bin", [ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST, SMB2CreateDurableHandleRequest())], BATCH)
        check(v1.oplock_level == BATCH, "v1: batch oplock granted")
        check(find(r, SMB2CreateDurableHandleResponse), "v1: durable handle granted (DHnQ)")
        v1_data = b"durable v1 data: " + os.urandom(64).hex().encode()
        v1.write(v1_data, 0)
        v1.flush()
        lock(v1, 8, 8, EXCL_NOW)

        # --- durable v2 with an RWH lease (v2 lease context)
        lease_key = os.urandom(16)
        create_guid = uuid.uuid4()
        lq = SMB2CreateRequestLeaseV2()
        lq["lease_key"] = lease_key
        lq["lease_state"] = RWH
        lq["epoch"] = b"\x00\x00"
        lq["parent_lease_key"] = b"\x00" * 16
        dq = SMB2CreateDurableHandleRequestV2()
        dq["timeout"] = 120000
        dq["create_guid"] = create_guid
        v2, r = create(
            tree1,
            "v2.bin",
            [
                ctx(CreateContextName.SMB2_CREATE_REQUEST_LEASE_V2, lq),
                ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2, dq),
            ],
            LEASE,
        )
        lr = find(r, SMB2CreateResponseLeaseV2)
        check(v2.oplock_level == LEASE and lr and lr[0]["lease_state"].get_value() == RWH, "v2: RWH lease granted")
        d2 = find(r, SMB2CreateDurableHandleResponseV2)
        check(d2 and d2[0]["timeout"].get_value() == 120000, "v2: durable handle granted (DH2Q), timeout echoed")
        v2_data = b"durable v2 data: " + os.urandom(64).hex().encode()
        v2.write(v2_data, 0)
        v2.flush()
        lock(v2, 0, 4, SHARED_NOW)

        # --- the variant's handle: short timeout, shares nothing
        bq = SMB2CreateDurableHandleRequestV2()
        bq["timeout"] = 6000
        bq["create_guid"] = uuid.uuid4()
        blocker, r = create(tree1, "blocked.bin", [ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2, bq)], BATCH, share=0)
        check(find(r, SMB2CreateDurableHandleResponseV2), "blocker: durable handle granted")
        blocker.write(b"x", 0)
        blocker.flush()

        v1_id, v2_id, blocker_id = v1.file_id, v2.file_id, blocker.file_id

        # --- the daemon dies and comes back
        daemon.kill9()
        print("ok: duetd killed with SIGKILL")
        try:
            conn1.disconnect(close=False)
        except Exception:
            pass
        daemon.start()
        restarted = time.monotonic()
        print("ok: duetd restarted on the same state directory")

        conn2, tree2 = connect(port, client_guid)
        other_conn, other = connect(port, uuid.uuid4())

        # The variant first (its timeout runs from the restart): another client's
        # conflicting open is refused while the restored handle lives...
        st = status_of(lambda: create(other, "blocked.bin", None, RequestedOplockLevel.SMB2_OPLOCK_LEVEL_NONE, disposition=CreateDisposition.FILE_OPEN))
        check(st == STATUS_SHARING_VIOLATION, f"a conflicting open is blocked by the restored handle (status {st:#x})")

        # --- reconnect v1 (DHnC) on the new connection
        rc = SMB2CreateDurableHandleReconnect()
        rc["data"] = v1_id
        v1b, r = create(tree2, "v1.bin", [ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_RECONNECT, rc)], BATCH)
        check(v1b.oplock_level == BATCH, "v1: reconnected after the restart, batch oplock back")
        check(v1b.file_id == v1_id, "v1: same FileId")
        check(v1b.read(0, len(v1_data)) == v1_data, "v1: the flushed data reads back")
        probe, _ = create(other, "v1.bin", None, RequestedOplockLevel.SMB2_OPLOCK_LEVEL_NONE,
                          access=FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES, disposition=CreateDisposition.FILE_OPEN)
        st = status_of(lambda: lock(probe, 8, 1, EXCL_NOW))
        check(st == STATUS_LOCK_NOT_GRANTED, f"v1: its byte-range lock came back (another client's lock: {st:#x})")
        lock(v1b, 8, 8, UNLOCK)
        check(status_of(lambda: lock(probe, 8, 1, EXCL_NOW)) == 0, "v1: unlocking releases the range to others")
        lock(probe, 8, 1, UNLOCK)
        probe.close()

        # --- reconnect v2 (DH2C) with its lease
        lq2 = SMB2CreateRequestLeaseV2()
        lq2["lease_key"] = lease_key
        lq2["lease_state"] = 0
        lq2["epoch"] = b"\x00\x00"
        lq2["parent_lease_key"] = b"\x00" * 16
        rc2 = SMB2CreateDurableHandleReconnectV2()
        rc2["file_id"] = v2_id
        rc2["create_guid"] = create_guid
        v2b, r = create(
            tree2,
            "v2.bin",
            [
                ctx(CreateContextName.SMB2_CREATE_REQUEST_LEASE_V2, lq2),
                ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2, rc2),
            ],
            LEASE,
        )
        lr = find(r, SMB2CreateResponseLeaseV2)
        check(v2b.oplock_level == LEASE and lr and lr[0]["lease_state"].get_value() == RWH, "v2: reconnected, RWH lease back")
        check(v2b.read(0, len(v2_data)) == v2_data, "v2: the flushed data reads back")
        # (A lock request from another client would break the lease's read caching, which
        # smbprotocol cannot take: the owner shows the lock is there by releasing it.)
        check(status_of(lambda: lock(v2b, 0, 4, UNLOCK)) == 0, "v2: its shared lock came back (the owner releases it)")
        st = status_of(lambda: lock(v2b, 0, 4, UNLOCK))
        check(st == STATUS_RANGE_NOT_LOCKED, f"v2: and it is gone once released ({st:#x})")
        v1b.close()
        v2b.close()

        # ...and succeeds once the restored handle's timeout (6 s from the restart) is over.
        while True:
            st = status_of(lambda: create(other, "blocked.bin", None, RequestedOplockLevel.SMB2_OPLOCK_LEVEL_NONE, disposition=CreateDisposition.FILE_OPEN)[0].close())
            waited = time.monotonic() - restarted
            if st == 0:
                break
            check(st == STATUS_SHARING_VIOLATION, f"still blocked after {waited:.1f} s")
            if waited > 20:
                raise AssertionError("the restored handle never expired")
            time.sleep(0.5)
        check(waited >= 5.0, f"the conflicting open succeeded only after the handle expired ({waited:.1f} s)")
        rc3 = SMB2CreateDurableHandleReconnectV2()
        rc3["file_id"] = blocker_id
        rc3["create_guid"] = bq["create_guid"].get_value()
        st = status_of(lambda: create(tree2, "blocked.bin", [ctx(CreateContextName.SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2, rc3)], BATCH))
        check(st == STATUS_OBJECT_NAME_NOT_FOUND, "the expired handle no longer reconnects")
        other_conn.disconnect()
        conn2.disconnect()
    finally:
        daemon.stop()
    print("durable_restart: all checks passed")


if __name__ == "__main__":
    main()
