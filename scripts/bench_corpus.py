#!/usr/bin/env python3
"""The corpora of `make bench-compare` (see scripts/bench_compare.py), their 1% change, and a
content digest of a tree to check restores.

Run as `bench_corpus.py DIR SCALE` it generates the three corpora under DIR once (each gets a
`.complete` marker and is reused afterwards). It runs as its own process because a child that
the benchmark starts later would otherwise report this process's peak memory as its own.

  a-tree    ~80,000 small files, ~1 GiB, in a nested source-tree-like layout; sizes are
            lognormal (median ~6 KiB, ~80% under 16 KiB, capped at 8 MiB); the content is
            slices of real files under /usr, so it compresses like real data
  b-large   four 256 MiB files: two random, one real data, one alternating 4 MiB of each
  c-sparse  one 2 GiB file of zeros (a sparse file) with ~4 MiB of data in 64 scattered pieces

Every size scales with SCALE. Seeds are fixed, so a corpus depends only on SCALE and on what
is installed under /usr when it is generated."""

import bisect
import hashlib
import json
import os
import random
import shutil
import stat
import sys

GIB = 1 << 30
MIB = 1 << 20
CORPORA = ("a-tree", "b-large", "c-sparse")
CHANGE_LINE = b"\n// changed by bench-compare\n"
EXTENSIONS = (".c", ".h", ".rs", ".py", ".go", ".js", ".json", ".md", ".txt", ".html", ".o")


class UsrData:
    """Byte ranges of the concatenation of the regular files under /usr (sorted by path)."""

    def __init__(self):
        self.paths, self.ends, total = [], [], 0
        for dirpath, dirnames, names in os.walk("/usr"):
            dirnames.sort()
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size >= 1024 and os.access(path, os.R_OK):
                    total += st.st_size
                    self.paths.append(path)
                    self.ends.append(total)
        self.total = total

    def read(self, rng, size):
        """`size` bytes starting at a random position, continuing into the next files."""
        out = bytearray()
        pos = rng.randrange(self.total)
        while len(out) < size:
            i = bisect.bisect_right(self.ends, pos) % len(self.paths)
            start = self.ends[i - 1] if i else 0
            try:
                with open(self.paths[i], "rb") as f:
                    f.seek(pos - start)
                    out += f.read(size - len(out))
            except OSError:
                pass
            pos = self.ends[i] % self.total
        return bytes(out)


def make_tree(path, scale, usr):
    rng = random.Random(1)
    total = int(GIB * scale)
    # Directories first: each hangs below a random earlier one, at most 7 levels deep, with
    # about 25 files per directory.
    ndirs = max(4, int(80_000 * scale / 25))
    dirs = [("src", 1)]
    for i in range(1, ndirs):
        parent, depth = dirs[rng.randrange(len(dirs))]
        if depth >= 7:
            parent, depth = dirs[rng.randrange(min(len(dirs), 8))]
        dirs.append((os.path.join(parent, f"{rng.choice('abcdefghkmnprstw')}mod{i:04}"), depth + 1))
    for d, _ in dirs:
        os.makedirs(os.path.join(path, d), exist_ok=True)
    written = n = 0
    while written < total:
        size = min(int(rng.lognormvariate(8.68, 1.3)), 8 * MIB, total - written)
        d = dirs[rng.randrange(len(dirs))][0]
        name = f"f{n:06}{rng.choice(EXTENSIONS)}"
        with open(os.path.join(path, d, name), "wb") as f:
            f.write(usr.read(rng, size) if size else b"")
        written += size
        n += 1
    return f"{n} files in {len(dirs)} directories, {written / MIB:.0f} MiB"


def make_large(path, scale, usr):
    rng = random.Random(2)
    os.makedirs(path, exist_ok=True)
    per_file = int(GIB * scale) // 4
    kinds = ("random", "real", "random", "mixed")
    for i, kind in enumerate(kinds):
        with open(os.path.join(path, f"big{i}-{kind}.img"), "wb") as f:
            left, piece_no = per_file, 0
            while left > 0:
                piece = min(left, 4 * MIB)
                real = kind == "real" or (kind == "mixed" and piece_no % 2 == 0)
                f.write(usr.read(rng, piece) if real else rng.randbytes(piece))
                left -= piece
                piece_no += 1
    return f"4 files of {per_file / MIB:.0f} MiB: " + ", ".join(kinds)


def make_sparse(path, scale, usr):
    rng = random.Random(3)
    os.makedirs(path, exist_ok=True)
    size = int(2 * GIB * scale)
    pieces = 64
    piece = max(4096, int(64 * 1024 * scale ** 0.5) // 4096 * 4096)
    data = 0
    with open(os.path.join(path, "disk.img"), "wb") as f:
        f.truncate(size)
        for i in range(pieces):
            offset = rng.randrange(0, size - piece) // 4096 * 4096
            f.seek(offset)
            f.write(usr.read(rng, piece) if i % 2 else rng.randbytes(piece))
            data += piece
    return f"1 file of {size / MIB:.0f} MiB, {pieces} pieces of {piece // 1024} KiB data, rest zero"


def generate(base, scale):
    """Generates the corpora under `base` that are not complete yet."""
    usr = None
    for name, make in zip(CORPORA, (make_tree, make_large, make_sparse)):
        path = os.path.join(base, name)
        if os.path.exists(path + ".complete"):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if usr is None:
            usr = UsrData()
        what = make(path, scale, usr)
        with open(path + ".complete", "w") as f:
            f.write(what + "\n")
        print(f"generated {path}: {what}", file=sys.stderr)


def change_files(tree, state_file):
    """Appends a line to every 100th file of the tree (in path order, so spread over all
    directories), after saving what `revert_change` needs to undo it."""
    files = [p for p, st in walk(tree) if stat.S_ISREG(st.st_mode)]
    chosen = files[::100]
    state = []
    for p in chosen:
        st = os.stat(p)
        state.append([p, st.st_size, st.st_atime_ns, st.st_mtime_ns])
    with open(state_file, "w") as f:
        json.dump(state, f)
    for p in chosen:
        with open(p, "ab") as f:
            f.write(CHANGE_LINE)
    return len(chosen), len(files)


def revert_change(state_file):
    """Undoes `change_files` (size and times), if its state file exists."""
    if not os.path.exists(state_file):
        return
    with open(state_file) as f:
        for path, size, atime, mtime in json.load(f):
            os.truncate(path, size)
            os.utime(path, ns=(atime, mtime))
    os.remove(state_file)


def walk(root):
    """(path, lstat) of everything below root, sorted, root excluded."""
    for dirpath, dirnames, names in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + names):
            path = os.path.join(dirpath, name)
            yield path, os.lstat(path)


def tree_digest(root):
    """SHA-256 over every entry's relative path, type, permissions, size and content, plus
    counts: {digest, files, dirs, bytes, allocated}."""
    total = hashlib.sha256()
    files = dirs = size = allocated = 0
    for path, st in walk(root):
        rel = os.path.relpath(path, root)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            dirs += 1
            total.update(f"d {rel} {mode:o}\n".encode())
        elif stat.S_ISLNK(st.st_mode):
            total.update(f"l {rel} {os.readlink(path)}\n".encode())
        elif stat.S_ISREG(st.st_mode):
            files += 1
            size += st.st_size
            allocated += st.st_blocks * 512
            content = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(MIB):
                    content.update(block)
            total.update(f"f {rel} {mode:o} {st.st_size} {content.hexdigest()}\n".encode())
        else:
            total.update(f"o {rel} {st.st_mode:o}\n".encode())
    return {"digest": total.hexdigest(), "files": files, "dirs": dirs, "bytes": size,
            "allocated": allocated}


if __name__ == "__main__":
    generate(sys.argv[1], float(sys.argv[2]))
