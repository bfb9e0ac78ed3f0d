"""Communication between ranks 0 and 1, by three paths, measured the same way: a ping-pong of
8 bytes (latency: half the round trip) and of 4 MiB (bandwidth), and an all-reduce of the
training's gradient size over all ranks.

- mpi: MPI Send/Recv over whatever transport Open MPI chose (shared memory between ranks it
  sees on one host, TCP between hosts or containers);
- tcp: a plain TCP connection between the two ranks (loopback, a container network, or the
  cluster's bridge);
- shm: a file in /dev/shm both ranks map, with a spinning flag: measured only when rank 1 sees
  rank 0's file (the same host, or containers sharing one IPC namespace).

Rank 0 prints `comm PATH latency=…us bandwidth=…MB/s`; with one rank there is nothing to measure.
"""
import argparse
import mmap
import os
import secrets
import socket
import statistics
import struct
import sys
import time

import numpy as np
from mpi4py import MPI

parser = argparse.ArgumentParser()
parser.add_argument("--round-trips", type=int, default=2000)
parser.add_argument("--big-round-trips", type=int, default=20)
parser.add_argument("--gradient-floats", type=int, default=64 * 256 + 256 * 256 + 256 * 10 + 522)
parser.add_argument("--timeout", type=float, default=60.0, help="seconds any wait may take")
args = parser.parse_args()

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
SMALL, BIG = 8, 4 << 20


def say(line):
    if rank == 0:
        print(line, flush=True)


def report(path, latency_s, bandwidth_bytes_s, extra=""):
    say(f"comm {path} latency={latency_s * 1e6:.2f}us "
        f"bandwidth={bandwidth_bytes_s / 1e6:.1f}MB/s{extra}")


def mpi_pingpong(nbytes, trips):
    buffer = np.zeros(nbytes, np.uint8)
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(trips):
        if rank == 0:
            comm.Send(buffer, dest=1)
            comm.Recv(buffer, source=1)
        elif rank == 1:
            comm.Recv(buffer, source=0)
            comm.Send(buffer, dest=0)
    return (time.perf_counter() - start) / trips


def allreduce_seconds(floats, times=30):
    flat = np.ones(floats, np.float32)
    samples = []
    for _ in range(times):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def exact(sock, nbytes, into):
    view, got = memoryview(into), 0
    while got < nbytes:
        n = sock.recv_into(view[got:nbytes])
        if n == 0:
            raise ConnectionError("peer closed")
        got += n


def addresses():
    """This host's IPv4 addresses, loopback last (no name service needed)."""
    import fcntl
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _, name in socket.if_nameindex():
        request = struct.pack("256s", name.encode()[:15])
        try:
            reply = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
        except OSError:
            continue
        found.append(socket.inet_ntoa(reply[20:24]))
    probe.close()
    return sorted(found, key=lambda a: a.startswith("127."))


def tcp_pingpong():
    """Rank 1 listens and sends its addresses; rank 0 connects to the first that answers."""
    sock = None
    if rank == 1:
        server = socket.socket()
        server.bind(("0.0.0.0", 0))
        server.listen(1)
        comm.send((addresses(), server.getsockname()[1]), dest=0)
        server.settimeout(args.timeout)
        sock, _ = server.accept()
    elif rank == 0:
        candidates, port = comm.recv(source=1)
        for address in candidates:
            try:
                sock = socket.create_connection((address, port), timeout=5)
                break
            except OSError:
                continue
        else:
            raise ConnectionError(f"cannot reach rank 1 at any of {candidates} port {port}")
    if sock is None:
        return None
    sock.settimeout(args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    results = []
    for nbytes, trips in ((SMALL, args.round_trips), (BIG, args.big_round_trips)):
        buffer = bytearray(nbytes)
        start = time.perf_counter()
        for _ in range(trips):
            if rank == 0:
                sock.sendall(buffer)
                exact(sock, nbytes, buffer)
            else:
                exact(sock, nbytes, buffer)
                sock.sendall(buffer)
        results.append((time.perf_counter() - start) / trips)
    sock.close()
    return results


def spin_until(region, offset, value, deadline):
    while struct.unpack_from("Q", region, offset)[0] != value:
        # Yield as Open MPI's ranks do here (mpi_yield_when_idle): a spinning waiter on a
        # machine with fewer free cores than waiters keeps the other side off the CPU.
        os.sched_yield()
        if time.monotonic() > deadline:
            raise TimeoutError("the other rank did not answer through /dev/shm")


def shm_pingpong():
    """Rank 0 makes /dev/shm/atlas-pingpong-*; rank 1 maps it when it can see it."""
    name = comm.bcast(f"/dev/shm/atlas-pingpong-{secrets.token_hex(6)}" if rank == 0 else None)
    length = 128 + BIG
    if rank == 0:
        with open(name, "wb") as f:
            f.truncate(length)
    comm.Barrier()
    # Co-located: one IPC namespace (a host, or containers that share one) and rank 0's file
    # visible (a container has its own /dev/shm unless it shares the IPC namespace).
    ipc = comm.bcast(os.readlink("/proc/self/ns/ipc"), root=0)
    seen = rank != 1 or (os.path.exists(name) and os.readlink("/proc/self/ns/ipc") == ipc)
    seen = comm.bcast(seen, root=1)
    if not seen:
        comm.Barrier()
        if rank == 0:
            os.unlink(name)
        return None
    if rank > 1:
        for _ in range(3):
            comm.Barrier()
        return None
    with open(name, "r+b") as f:
        region = mmap.mmap(f.fileno(), length)
    mine, theirs = (0, 64) if rank == 0 else (64, 0)
    results, count = [], 0
    for nbytes, trips in ((SMALL, args.round_trips), (BIG, args.big_round_trips)):
        payload = bytes(nbytes)
        comm.Barrier()
        deadline = time.monotonic() + args.timeout
        start = time.perf_counter()
        for _ in range(trips):
            count += 1
            if rank == 0:
                region[128 : 128 + nbytes] = payload
                struct.pack_into("Q", region, mine, count)
                spin_until(region, theirs, count, deadline)
                payload = region[128 : 128 + nbytes]
            else:
                spin_until(region, theirs, count, deadline)
                payload = region[128 : 128 + nbytes]
                region[128 : 128 + nbytes] = payload
                struct.pack_into("Q", region, mine, count)
        results.append((time.perf_counter() - start) / trips)
    region.close()
    comm.Barrier()
    if rank == 0:
        os.unlink(name)
    return results


if size < 2:
    say("comm: one rank, nothing to measure")
    sys.exit(0)
hosts = comm.gather(socket.gethostname(), root=0)
if rank == 0:
    say(f"comm between {hosts[0]} and {hosts[1]} ({size} ranks)")
latency = mpi_pingpong(SMALL, args.round_trips) / 2
bandwidth = 2 * BIG / mpi_pingpong(BIG, args.big_round_trips)
report("mpi", latency, bandwidth,
       f" allreduce={allreduce_seconds(args.gradient_floats) * 1e3:.3f}ms")
for path, measure in (("tcp", tcp_pingpong), ("shm", shm_pingpong)):
    results = measure()
    if rank == 0 and results:
        report(path, results[0] / 2, 2 * BIG / results[1])
    elif rank == 0:
        say(f"comm {path}: not measured (ranks 0 and 1 do not share an IPC namespace and /dev/shm)")
