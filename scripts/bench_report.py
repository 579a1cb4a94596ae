"""Markdown tables of `make bench-compare` (scripts/bench_compare.py): one per corpus with
this project's ratio to each peer, and this project's goals against restic.

A row is a dict: step, tool, wall (s), cpu (s, every process), rss (client MiB), server_rss
(MiB, this project only, else None), stored (bytes), new (bytes the tool reports as new, or
None), note; a failed tool has only step, tool, failed and note."""

import statistics

MIB = 1 << 20
MEASURED = ("wall", "cpu", "rss", "server_rss", "stored", "new")
CORPUS_TITLES = {"a": "source tree", "b": "large binary files", "c": "mostly-zero file"}


def median_rows(runs):
    """One tool's rows on one corpus from its repeated runs (a list of row lists, in run
    order): per step, the median of each measurement, the note of the run whose wall time is
    the median, and the range of wall times. A run that failed is reported instead, as it is.
    """
    failed = [rows for rows in runs if any(r.get("failed") for r in rows)]
    if failed:
        return failed[0]
    if len(runs) == 1:
        return runs[0]
    merged = []
    for same in zip(*runs, strict=True):
        if len({r["step"] for r in same}) != 1:
            raise ValueError(f"runs differ in their steps: {[r['step'] for r in same]}")
        by_wall = sorted(same, key=lambda r: r["wall"])
        row = dict(by_wall[len(by_wall) // 2])
        for field in MEASURED:
            values = [r[field] for r in same]
            if None not in values:
                row[field] = statistics.median(values)
        spread = f"wall {by_wall[0]['wall']:.2f}-{by_wall[-1]['wall']:.2f} s in {len(same)} runs"
        row["note"] = f"{row['note']}; {spread}" if row.get("note") else spread
        merged.append(row)
    return merged


def ratio(peer, ours):
    return f"{peer / ours:.2f}" if peer is not None and ours else "–"


def corpus_table(key, info, floor, rows):
    out = [f"### Corpus {key}: {CORPUS_TITLES[key]} ({info})", "",
           f"Reading it with `tar -cf - | cat >/dev/null` from a cold cache: {floor}.", "",
           "| step | tool | wall s | CPU s | client RSS MiB | server RSS MiB | stored MiB "
           "| new data MiB | wall ×ours | CPU ×ours | RSS ×ours | stored ×ours |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ours = {r["step"]: r for r in rows if r["tool"] == "ours" and "wall" in r}
    steps = list(dict.fromkeys(r["step"] for r in rows))
    for step in steps:
        for r in (r for r in rows if r["step"] == step):
            if "wall" not in r:
                out.append(f"| {step} | {r['tool']} | failed: see below |||||||||")
                continue
            base = ours.get(step) if r["tool"] != "ours" else None
            new = f"{r['new'] / MIB:.1f}" if r["new"] is not None else ""
            srv = f"{r['server_rss']:.0f}" if r["server_rss"] is not None else "–"
            if base:
                ours_rss = base["rss"] + (base["server_rss"] or 0)
                ratios = [ratio(r["wall"], base["wall"]), ratio(r["cpu"], base["cpu"]),
                          ratio(r["rss"], ours_rss), ratio(r["stored"], base["stored"])]
            else:
                ratios = ["–"] * 4
            out.append(f"| {step} | {r['tool']} | {r['wall']:.2f} | {r['cpu']:.2f} "
                       f"| {r['rss']:.0f} | {srv} | {r['stored'] / MIB:.1f} | {new} | "
                       + " | ".join(ratios) + " |")
    out.append("")
    for r in rows:
        if r.get("note"):
            out.append(f"- {r['step']}, {r['tool']}: {r['note']}")
    return "\n".join(out) + "\n"


def targets(all_rows):
    """This project's goals against restic, per corpus."""
    out = ["| corpus | goal | restic / ours | met |", "| --- | --- | ---: | --- |"]
    for key, rows in all_rows.items():
        get = {(r["tool"], r["step"]): r for r in rows if "wall" in r}
        first_o, first_r = get.get(("ours", "first backup")), get.get(("restic", "first backup"))
        rest_o, rest_r = get.get(("ours", "restore")), get.get(("restic", "restore"))
        checks = []
        if first_o and first_r:
            checks.append(("first backup ≥2x faster", first_r["wall"] / first_o["wall"], 2.0))
            checks.append(("stored after first backup ≤ restic",
                           first_r["stored"] / first_o["stored"], 1.0))
        if rest_o and rest_r:
            checks.append(("restore ≥2x faster", rest_r["wall"] / rest_o["wall"], 2.0))
        same_o, same_r = get.get(("ours", "unchanged backup")), get.get(("restic", "unchanged backup"))
        if same_o and same_r:
            checks.append(("unchanged backup ≥3x faster", same_r["wall"] / same_o["wall"], 3.0))
        inc_o, inc_r = get.get(("ours", "1% changed backup")), get.get(("restic", "1% changed backup"))
        if inc_o and inc_r:
            checks.append(("1% changed backup faster", inc_r["wall"] / inc_o["wall"], 1.000001))
            if same_o and same_r:
                # Bytes the 1% step added to the repository; within 2x of restic's.
                added_o = max(inc_o["stored"] - same_o["stored"], 1e-9)
                added_r = inc_r["stored"] - same_r["stored"]
                checks.append(("1% changed: stored bytes added ≤ 2x restic",
                               2 * added_r / added_o, 1.0))
        peak_o = [r["rss"] + (r["server_rss"] or 0) for r in rows
                  if r["tool"] == "ours" and "wall" in r]
        peak_r = [r["rss"] for r in rows if r["tool"] == "restic" and "wall" in r]
        if peak_o and peak_r:
            checks.append(("peak memory (client+server) < restic", max(peak_r) / max(peak_o),
                           1.000001))
        for goal, value, need in checks:
            out.append(f"| {key} | {goal} | {value:.2f} | {'yes' if value >= need else 'NO'} |")
    return "\n".join(out) + "\n"
