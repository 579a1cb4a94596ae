#!/usr/bin/env python3
"""`make bench`: backup and restore throughput and peak memory of this project's release
binaries on a generated ~1 GiB corpus (many small files plus a few large ones), next to the
machine's single-core limits (chunker, SHA-256, zstd) from `cargo bench -p datastore`.

The corpus is generated once into BENCH_DIR (default /var/tmp/backup-rs-bench) and reused.
BENCH_CLIENT_ARGS is appended to the backup command (e.g. `--upload-mode stream`).
Client peak memory is the child's ru_maxrss; the server's is VmHWM read from /proc before
it is stopped."""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
BENCH_DIR = os.environ.get("BENCH_DIR", "/var/tmp/backup-rs-bench")
SMALL_TOTAL = int(os.environ.get("BENCH_SMALL_MB", "512")) << 20
LARGE_TOTAL = int(os.environ.get("BENCH_LARGE_MB", "512")) << 20


def real_data(limit):
    """Bytes of real files under /usr (realistic compressibility), up to limit."""
    out = bytearray()
    for base in ("/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/bin", "/usr/lib"):
        for dirpath, _, names in os.walk(base):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    with open(path, "rb") as f:
                        out += f.read(limit - len(out))
                except OSError:
                    continue
                if len(out) >= limit:
                    return bytes(out)
    return bytes(out)


def make_corpus(path):
    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return
    shutil.rmtree(path, ignore_errors=True)
    rng = random.Random(42)
    pool = real_data(256 << 20)
    if len(pool) < (16 << 20):
        pool += rng.randbytes((256 << 20) - len(pool))
    # Many small files in a source-tree-like layout.
    written, n = 0, 0
    while written < SMALL_TOTAL:
        d = os.path.join(path, "src", f"d{n // 400:03}", f"s{(n // 40) % 10}")
        os.makedirs(d, exist_ok=True)
        size = min(int(rng.lognormvariate(8.5, 1.2)), 1 << 20)
        start = rng.randrange(0, len(pool) - size)
        with open(os.path.join(d, f"f{n:06}.dat"), "wb") as f:
            f.write(pool[start:start + size])
        written += size
        n += 1
    # A few large files: half real data, half incompressible.
    os.makedirs(os.path.join(path, "large"), exist_ok=True)
    per_file = LARGE_TOTAL // 4
    for i in range(4):
        with open(os.path.join(path, "large", f"big{i}.bin"), "wb") as f:
            left = per_file
            while left > 0:
                piece = min(left, 8 << 20)
                if i % 2 == 0:
                    start = rng.randrange(0, len(pool) - piece)
                    f.write(pool[start:start + piece])
                else:
                    f.write(rng.randbytes(piece))
                left -= piece
    open(marker, "w").close()
    # Free the pool now: a child forked later would otherwise start with (and report in
    # its ru_maxrss) this process's memory.
    del pool
    print(f"corpus: {n} small files, 4 large files in {path}", file=sys.stderr)


def tree_size(path):
    total = files = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
                files += 1
    return total, files


def measure(cmd, env):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err.decode()}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, out


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def limits_table():
    return cargo_bench("limits")


def cargo_bench(name):
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "datastore", "--bench", name],
        cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return f"({name} bench failed: {out.stderr.strip()[-500:]})"
    return out.stdout.strip()


def main():
    corpus = os.path.join(BENCH_DIR, "corpus")
    os.makedirs(BENCH_DIR, exist_ok=True)
    make_corpus(corpus)
    size, files = tree_size(corpus)
    work = tempfile.mkdtemp(dir=BENCH_DIR, prefix="run-")
    server = None
    try:
        config = os.path.join(work, "config")
        init = subprocess.run([f"{BIN}/backup-server", "init", "--config-dir", config],
                              check=True, capture_output=True, text=True).stdout
        fingerprint = init.split("fingerprint: ")[1].split()[0]
        subprocess.run([f"{BIN}/backup-server", "datastore", "create", "bench",
                        os.path.join(work, "store"), "--config-dir", config],
                       check=True, capture_output=True)
        server = subprocess.Popen(
            [f"{BIN}/backup-server", "serve", "--config-dir", config, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "server.log"), "w"), text=True)
        addr = server.stdout.readline().strip().removeprefix("listening on ")
        env = dict(os.environ,
                   BACKUP_REPOSITORY=f"root@local!admin@{addr}:bench",
                   BACKUP_PASSWORD=open(os.path.join(config, "admin.token")).read().strip(),
                   BACKUP_FINGERPRINT=fingerprint)
        client = [f"{BIN}/backup-client", "--output-format", "json"]
        rows = []
        for label in ("first backup", "unchanged backup"):
            subprocess.run(["sync"], check=True)
            extra = os.environ.get("BENCH_CLIENT_ARGS", "").split()
            wall, cpu, rss, out = measure(
                client + ["backup", f"root.tar:{corpus}", "--backup-id", "bench"] + extra, env)
            summary = json.loads(out)
            rows.append((label, wall, cpu, rss, summary["bytes_stored"], summary["new_chunks"]))
            snapshot = summary["snapshot"]
        target = os.path.join(work, "restore")
        subprocess.run(["sync"], check=True)
        wall, cpu, rss, out = measure(client + ["restore", snapshot, "root.tar", target], env)
        rows.append(("restore", wall, cpu, rss, 0, 0))
        # Reference: GNU tar extracting the same tree on the same disk, which shows what
        # file creation costs here (the restore can not be faster than that).
        shutil.rmtree(target)
        os.makedirs(target)
        subprocess.run(["sync"], check=True)
        wall, cpu, rss, _ = measure(
            ["sh", "-c", f"tar -C '{corpus}' -cf - . | tar -C '{target}' -xf -"], env)
        rows.append(("reference: GNU tar c | tar x", wall, cpu, rss, 0, 0))
        # Verify the whole store (both snapshots share every chunk: each is read once).
        subprocess.run(["sync"], check=True)
        admin = [f"{BIN}/backup-server"]
        start = time.monotonic()
        out = subprocess.run(admin + ["verify", "bench", "--config-dir", config,
                                      "--output-format", "json"],
                             check=True, capture_output=True, text=True).stdout
        verify_wall = time.monotonic() - start
        verify = json.loads(out)["result"]
        server_hwm = vm_hwm(server.pid)
        store_size = subprocess.run(["du", "-sb", os.path.join(work, "store")],
                                    capture_output=True, text=True).stdout.split()[0]
    finally:
        if server:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)

    print(f"corpus: {size / 2**20:.0f} MiB in {files} files; {os.cpu_count()} cores\n")
    print("| run | wall s | MB/s | client CPU s | client peak RSS MiB | new chunks | bytes stored |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, wall, cpu, rss, stored, new in rows:
        print(f"| {label} | {wall:.2f} | {size / wall / 1e6:.0f} | {cpu:.2f} | {rss:.0f} | {new} | {stored} |")
    print(f"\nserver peak RSS: {server_hwm:.0f} MiB; datastore size after both backups: "
          f"{int(store_size) / 2**20:.0f} MiB\n")
    print(f"verify of the whole store: {verify['chunks-checked']} chunks, "
          f"{verify['bytes-checked'] / 2**20:.0f} MiB read, {size / 2**20:.0f} MiB of data, "
          f"{verify_wall:.2f} s = {size / verify_wall / 1e6:.0f} MB/s of data "
          f"({os.cpu_count()} worker threads)\n")
    print("single-core limits (cargo bench -p datastore --bench limits):\n")
    print(limits_table())
    if os.environ.get("BENCH_GC", "1") != "0":
        print("\ngarbage collection (cargo bench -p datastore --bench gc):\n")
        print(cargo_bench("gc"))


if __name__ == "__main__":
    main()
