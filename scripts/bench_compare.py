#!/usr/bin/env python3
"""`make bench-compare`: this project, restic and borg on the same corpora, in one run.

For each corpus (scripts/bench_corpus.py) and tool: a first backup, an unchanged second
backup, for the source tree a backup after changing 1% of its files, and a full restore of
the last snapshot into an empty directory, checked against the source by a digest of all
paths, permissions and contents. Per step: wall time; CPU time (user+sys) and peak RSS of
every process involved (commands run under GNU time; this project's server is one long-lived
process: CPU from /proc/PID/stat, peak RSS from VmHWM, reset between steps through
/proc/PID/clear_refs); the repository's size (`du -sb`) after the step. As root, the page
cache is dropped before every step, so every tool reads its input from disk.

Environment: BENCH_DIR (default /var/tmp/backup-rs-compare), BENCH_SCALE (default 1: full
size; 0.05 for a quick check), BENCH_CLIENT_ARGS (appended to `backup-client backup`, e.g.
"--upload-mode stream"), BENCH_TOOLS (default "ours,restic,borg"), BENCH_CORPORA (default
"a,b,c"), BENCH_DATASTORE_ARGS (appended to `backup-server datastore create`, e.g.
"--chunk-size-kib 1024"), BENCH_REPEAT (default 1: runs every tool's steps that many times,
the tools taking turns, and reports each measurement's median), BENCH_LIMITS=0 skips
`cargo bench -p datastore --bench limits`.
Options: --out FILE also writes the markdown report to FILE."""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import bench_corpus
import bench_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
BENCH_DIR = os.environ.get("BENCH_DIR", "/var/tmp/backup-rs-compare")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
CLIENT_ARGS = shlex.split(os.environ.get("BENCH_CLIENT_ARGS", ""))
DATASTORE_ARGS = shlex.split(os.environ.get("BENCH_DATASTORE_ARGS", ""))
TOOLS = os.environ.get("BENCH_TOOLS", "ours,restic,borg").split(",")
REPEAT = os.environ.get("BENCH_REPEAT", "1")
CORPORA = {"a": "a-tree", "b": "b-large", "c": "c-sparse"}
RESTIC_PASSWORD = "bench-compare"
MIB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench-compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def drop_caches():
    subprocess.run(["sync"], check=True)
    if os.geteuid() == 0:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def du_bytes(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


class Failed(Exception):
    pass


def timed(cmd, env, cwd, logs):
    """Runs cmd under GNU time: (wall s, CPU s, peak RSS MiB, stdout)."""
    usage = os.path.join(logs, "time.out")
    out_path, err_path = os.path.join(logs, "stdout"), os.path.join(logs, "stderr")
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        code = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", usage] + cmd,
                              env=env, cwd=cwd, stdout=out, stderr=err).returncode
    wall = time.monotonic() - start
    with open(err_path, errors="replace") as f:
        err_text = f.read()
    if code != 0:
        raise Failed(f"`{' '.join(cmd)}` exited with {code}: {err_text.strip()[-800:]}")
    with open(usage) as f:
        user, system, rss_kib = f.read().split()[-3:]
    with open(out_path, errors="replace") as f:
        return wall, float(user) + float(system), int(rss_kib) / 1024, f.read()


class ServerProbe:
    """CPU and peak RSS of the long-lived server process over one step."""

    def __init__(self, pid):
        self.pid = pid

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def start(self):
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5\n")
        self.cpu_before = self.cpu()

    def stop(self):
        with open(f"/proc/{self.pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return self.cpu() - self.cpu_before, hwm / 1024


class Ours:
    name = "ours"

    def __init__(self, work, corpus):
        self.work, self.corpus, self.snapshot = work, corpus, None
        self.repo = os.path.join(work, "store")
        config = os.path.join(work, "config")
        init = subprocess.run([f"{BIN}/backup-server", "init", "--config-dir", config],
                              check=True, capture_output=True, text=True).stdout
        fingerprint = init.split("fingerprint: ")[1].split()[0]
        subprocess.run([f"{BIN}/backup-server", "datastore", "create", "bench", self.repo,
                        "--config-dir", config] + DATASTORE_ARGS, check=True,
                       capture_output=True)
        self.server = subprocess.Popen(
            [f"{BIN}/backup-server", "serve", "--config-dir", config,
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(work, "server.log"), "w"),
            text=True)
        addr = self.server.stdout.readline().strip().removeprefix("listening on ")
        if not addr:
            self.stop()
            raise Failed("server did not start: see " + os.path.join(work, "server.log"))
        self.probe = ServerProbe(self.server.pid)
        with open(os.path.join(config, "admin.token")) as f:
            token = f.read().strip()
        self.env = dict(os.environ, BACKUP_REPOSITORY=f"root@local!admin@{addr}:bench",
                        BACKUP_PASSWORD=token, BACKUP_FINGERPRINT=fingerprint)
        self.client = [f"{BIN}/backup-client", "--output-format", "json"]

    def backup_cmd(self, step):
        return self.client + ["backup", f"root.tar:{self.corpus}",
                              "--backup-id", "bench"] + CLIENT_ARGS

    def after_backup(self, stdout):
        summary = json.loads(stdout)
        self.snapshot = summary["snapshot"]
        return summary["bytes_uploaded"], (
            f"read {summary['bytes_read'] / MIB:.0f} MiB, {summary['chunks']} chunks, "
            f"{summary['new_chunks']} new, uploaded {summary['bytes_uploaded'] / MIB:.1f} MiB, "
            f"stored {summary['bytes_stored'] / MIB:.1f} MiB, mode "
            + ",".join(a["upload_mode"] for a in summary["archives"]))

    def restore_cmd(self, target):
        return self.client + ["restore", self.snapshot, "root.tar", target], None

    def restored_root(self, target):
        return target

    def stop(self):
        self.server.kill()
        self.server.wait()


class Restic:
    name = "restic"
    probe = None

    def __init__(self, work, corpus):
        self.corpus = corpus
        self.repo = os.path.join(work, "repo")
        self.env = dict(os.environ, RESTIC_PASSWORD=RESTIC_PASSWORD,
                        RESTIC_CACHE_DIR=os.path.join(work, "cache"))
        subprocess.run(["restic", "-r", self.repo, "init"], env=self.env, check=True,
                       capture_output=True)

    def backup_cmd(self, step):
        return ["restic", "-r", self.repo, "backup", "--json", "--host", "bench", self.corpus]

    def after_backup(self, stdout):
        summary = [json.loads(line) for line in stdout.splitlines() if '"summary"' in line][-1]
        return summary["data_added"], (
            f"{summary['files_new']} new files, {summary['files_changed']} changed, "
            f"{summary['files_unmodified']} unmodified, data added "
            f"{summary['data_added'] / MIB:.1f} MiB")

    def restore_cmd(self, target):
        return ["restic", "-r", self.repo, "restore", "latest", "--target", target], None

    def restored_root(self, target):
        return os.path.join(target, self.corpus.lstrip("/"))

    def stop(self):
        pass


class Borg:
    name = "borg"
    probe = None

    def __init__(self, work, corpus):
        self.corpus, self.archive = corpus, None
        self.repo = os.path.join(work, "repo")
        self.env = dict(os.environ, BORG_BASE_DIR=os.path.join(work, "home"),
                        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
        subprocess.run(["borg", "init", "--encryption=none", self.repo], env=self.env,
                       check=True, capture_output=True)

    def backup_cmd(self, step):
        self.archive = f"step{step}"
        return ["borg", "create", "--json", f"{self.repo}::{self.archive}", self.corpus]

    def after_backup(self, stdout):
        stats = json.loads(stdout)["archive"]["stats"]
        return stats["deduplicated_size"], (
            f"{stats['nfiles']} files, original {stats['original_size'] / MIB:.0f} MiB, "
            f"compressed {stats['compressed_size'] / MIB:.0f} MiB, deduplicated "
            f"{stats['deduplicated_size'] / MIB:.1f} MiB")

    def restore_cmd(self, target):
        os.makedirs(target)
        return ["borg", "extract", f"{self.repo}::{self.archive}"], target

    def restored_root(self, target):
        return os.path.join(target, self.corpus.lstrip("/"))

    def stop(self):
        pass


TOOL_CLASSES = {"ours": Ours, "restic": Restic, "borg": Borg}


def run_step(tool, label, cmd, cwd, logs, after=None):
    drop_caches()
    if tool.probe:
        tool.probe.start()
    wall, cpu, rss, stdout = timed(cmd, tool.env, cwd, logs)
    server_cpu, server_rss = tool.probe.stop() if tool.probe else (0.0, None)
    row = {"step": label, "tool": tool.name, "wall": wall, "cpu": cpu + server_cpu,
           "rss": rss, "server_rss": server_rss, "stored": du_bytes(tool.repo),
           "new": None, "note": ""}
    if tool.probe:
        row["note"] = f"client CPU {cpu:.1f} s, server CPU {server_cpu:.1f} s; "
    if after:
        row["new"], note = after(stdout)
        row["note"] += note
    log(f"{tool.name} {label}: {wall:.1f} s wall, {row['cpu']:.1f} s CPU")
    return row


def run_tool(name, key, corpus, digests, notes, works):
    """All steps of one tool on one corpus. Its directory (repository, restored tree) is
    added to `works`, to be removed when the whole run is over (see `remove_works`)."""
    work = tempfile.mkdtemp(dir=BENCH_DIR, prefix=f"run-{name}-{key}-")
    works.append(work)
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    state = os.path.join(BENCH_DIR, f"{os.path.basename(corpus)}.changed.json")
    rows, tool = [], None
    try:
        tool = TOOL_CLASSES[name](work, corpus)
        steps = ["first backup", "unchanged backup"] + (["1% changed backup"] if key == "a" else [])
        for i, label in enumerate(steps, 1):
            if label.startswith("1%"):
                changed, total = bench_corpus.change_files(corpus, state)
                notes.add(f"1% change: a line appended to {changed} of {total} files "
                          "(every 100th in path order), undone after the restore check.")
            rows.append(run_step(tool, label, tool.backup_cmd(i), None, logs, tool.after_backup))
        target = os.path.join(work, "restore")
        cmd, cwd = tool.restore_cmd(target)
        rows.append(run_step(tool, "restore", cmd, cwd, logs))
        expected = digests.get((key, os.path.exists(state)))
        if expected is None:
            expected = bench_corpus.tree_digest(corpus)
            digests[(key, os.path.exists(state))] = expected
        got = bench_corpus.tree_digest(tool.restored_root(target))
        ok = got["digest"] == expected["digest"]
        check = (f"{got['files']} files, {got['dirs']} dirs, {got['bytes'] / MIB:.0f} MiB, "
                 f"{got['allocated'] / MIB:.0f} MiB allocated on disk; content digest "
                 + ("equal to the source" if ok else "DIFFERS from the source"))
        if key == "a" and name == "ours":
            diff = subprocess.run(["diff", "-r", "--no-dereference", corpus,
                                   tool.restored_root(target)], capture_output=True, text=True)
            check += "; diff -r " + ("clean" if diff.returncode == 0 else
                                     "FOUND DIFFERENCES: " + diff.stdout[:500])
            ok = ok and diff.returncode == 0
        rows[-1]["note"] = check
        rows[-1]["failed"] = not ok
    except (Failed, subprocess.CalledProcessError, OSError, ValueError, KeyError) as e:
        log(f"{name} on corpus {key} failed: {e}")
        rows.append({"step": "FAILED", "tool": name, "failed": True, "note": str(e)[:800]})
    finally:
        if tool:
            tool.stop()
        bench_corpus.revert_change(state)
    return rows


# ext4 without a journal (as on the bench's VM) skips inodes freed in the last 60 s (360 s
# while their inode table is not written back) when it allocates new ones: a restore of
# corpus a right after a tree of 78,000 files was deleted took 6.9 s instead of 4.1, nearly
# all of it system time. So no tree is deleted while the run lasts, and what an interrupted
# run left is deleted, written back, and given this long before the first step.
RECENTLY_FREED_S = 60


def remove_works(works):
    """Deletes the runs' directories and writes the deletion back."""
    for work in works:
        shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["sync"], check=False)


def remove_stale_works():
    """Deletes the directories an interrupted run left, then waits (see RECENTLY_FREED_S)."""
    stale = [os.path.join(BENCH_DIR, d) for d in os.listdir(BENCH_DIR) if d.startswith("run-")]
    if stale:
        log(f"removing {len(stale)} directories of an interrupted run, then waiting "
            f"{RECENTLY_FREED_S} s: ext4 skips recently freed inodes")
        remove_works(stale)
        time.sleep(RECENTLY_FREED_S)


def read_floor(corpus):
    """Wall time of GNU tar reading the corpus from disk: what reading alone costs here, one
    file after the other."""
    logs = tempfile.mkdtemp(dir=BENCH_DIR, prefix="tar-")
    try:
        drop_caches()
        wall, cpu, _, _ = timed(["sh", "-c", f"tar -C '{corpus}' -cf - . | cat >/dev/null"],
                                None, None, logs)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    return f"{wall:.2f} s wall, {cpu:.2f} s CPU"


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "not installed"


def header():
    commit = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %cs %s"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                            "--", "*.rs", "*Cargo.toml"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo")
               if line.startswith("MemTotal"))
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", BENCH_DIR],
                        capture_output=True, text=True).stdout
    fs = " ".join(fs.split())
    lines = [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; "
        f"commit: {commit}" + (" (with uncommitted Rust changes)" if dirty else ""),
        f"- machine: {cpu}, {os.cpu_count()} cores, {mem / (1 << 20):.0f} GiB RAM, "
        f"Linux {platform.release()}; BENCH_DIR {BENCH_DIR} on {fs}",
        f"- tools: {version([f'{BIN}/backup-client', '--version'])} "
        f"(release build, default upload mode"
        + (f", extra args `{' '.join(CLIENT_ARGS)}`" if CLIENT_ARGS else "")
        + (f", datastore created with `{' '.join(DATASTORE_ARGS)}`" if DATASTORE_ARGS else "")
        + "); "
        f"{version(['restic', 'version'])}; {version(['borg', '--version'])}",
        f"- BENCH_SCALE {SCALE:g}; page cache dropped before every step: "
        + ("yes" if os.geteuid() == 0 else "no (not root)")
        + (f"; every tool run {REPEAT} times, taking turns: medians" if int(REPEAT) > 1 else ""),
    ]
    return "\n".join(lines) + "\n"


def limits():
    if os.environ.get("BENCH_LIMITS", "1") == "0":
        return "(skipped: BENCH_LIMITS=0)\n"
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    out = subprocess.run(["cargo", "bench", "-q", "-p", "datastore", "--bench", "limits"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return f"(limits bench failed: {out.stderr.strip()[-500:]})\n"
    return out.stdout.strip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args()
    if not (REPEAT.isdigit() and int(REPEAT) >= 1):
        sys.exit(f"BENCH_REPEAT must be a whole number of runs, 1 or more, not {REPEAT!r}")
    if not os.path.exists("/usr/bin/time"):
        sys.exit("GNU time is missing: apt-get install time")
    base = os.path.join(BENCH_DIR, f"corpus-scale{SCALE:g}")
    os.makedirs(base, exist_ok=True)
    for key in CORPORA:
        bench_corpus.revert_change(os.path.join(BENCH_DIR, f"{CORPORA[key]}.changed.json"))
    log(f"corpora in {base} (generated once)")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_corpus.py"),
                    base, str(SCALE)], check=True)
    log("single-core limits: cargo bench -p datastore --bench limits")
    limits_text = limits()
    keys = [k for k in os.environ.get("BENCH_CORPORA", "a,b,c").split(",") if k in CORPORA]
    all_rows, notes, digests, sections, works = {}, set(), {}, [], []
    remove_stale_works()
    try:
        for key in keys:
            corpus = os.path.join(base, CORPORA[key])
            with open(corpus + ".complete") as f:
                info = f.read().strip()
            log(f"corpus {key}: cold read with tar")
            floor = read_floor(corpus)
            runs = {name: [] for name in TOOLS}
            for rep in range(1, int(REPEAT) + 1):
                for name in TOOLS:
                    log(f"corpus {key}: {name}, run {rep} of {REPEAT}")
                    runs[name].append(run_tool(name, key, corpus, digests, notes, works))
            rows = [row for name in TOOLS for row in bench_report.median_rows(runs[name])]
            all_rows[key] = rows
            sections.append(bench_report.corpus_table(key, info, floor, rows))
    finally:
        remove_works(works)
    report = ["## bench-compare results", "", header()]
    report += sections
    report += ["### Goals of this project against restic", "",
               bench_report.targets(all_rows)]
    report += ["".join(f"- {n}\n" for n in sorted(notes))] if notes else []
    report += ["### Single-core limits (cargo bench -p datastore --bench limits)", "",
               limits_text]
    text = "\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if any(r.get("failed") for rows in all_rows.values() for r in rows):
        sys.exit("bench-compare: a step failed or a restore differs (see the report)")


if __name__ == "__main__":
    main()
