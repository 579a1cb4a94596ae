use super::*;

fn digest(i: u8) -> Digest {
    Digest([i; 32])
}

/// Chunks of 100 bytes each: [0,100), [100,200), ...
fn previous(chunks: u8) -> PreviousPayload {
    PreviousPayload::new((0..chunks).map(|i| (digest(i), 100 * (u64::from(i) + 1)))).unwrap()
}

fn numbers(chunks: &[ReusedChunk]) -> Vec<u8> {
    chunks.iter().map(|c| c.digest.0[0]).collect()
}

#[test]
fn ends_must_increase() {
    assert!(PreviousPayload::new([(digest(0), 10), (digest(1), 10)]).is_none());
    assert!(PreviousPayload::new([(digest(0), 0)]).is_none());
    assert_eq!(previous(3).len(), 300);
}

#[test]
fn an_unchanged_stream_is_reused_whole_at_the_same_offsets() {
    let mut planner = Planner::new(previous(4));
    let files = [0..50, 50..100, 100..250, 250..400];
    for (i, range) in files.iter().enumerate() {
        assert!(planner.in_bounds(range));
        assert_eq!(planner.continues_run(range), i > 0);
        assert!(!planner.add(range.clone()));
    }
    assert_eq!(planner.decide(0), Verdict::Reuse);
    assert!(planner.run_committed());
    let mut pos = 0;
    let mut appended = Vec::new();
    for range in &files {
        let (offset, chunks) = planner.place(range, pos);
        assert_eq!(offset, range.start);
        pos += chunks.iter().map(|c| c.size).sum::<u64>();
        appended.extend(numbers(&chunks));
    }
    assert_eq!(appended, [0, 1, 2, 3], "each chunk once, in order");
    assert_eq!(pos, 400);
    let stats = planner.stats();
    assert_eq!((stats.files, stats.bytes, stats.padding()), (4, 400, 0));
}

#[test]
fn a_small_file_in_a_chunk_of_changed_files_is_read_again() {
    let mut planner = Planner::new(previous(4));
    planner.add(120..150);
    assert_eq!(planner.decide(0), Verdict::Read);
    assert!(!planner.has_run());
    // 91 of 100 bytes used: 9% padding is within the limit.
    planner.add(100..191);
    assert_eq!(planner.decide(0), Verdict::Reuse);
    let (offset, chunks) = planner.place(&(100..191), 0);
    assert_eq!((offset, numbers(&chunks)), (0, vec![1]));
    assert_eq!(planner.stats().padding(), 9);
}

#[test]
fn new_data_between_runs_starts_a_new_block() {
    let mut planner = Planner::new(previous(4));
    planner.add(0..100);
    planner.decide(0);
    let (offset, chunks) = planner.place(&(0..100), 0);
    assert_eq!((offset, numbers(&chunks)), (0, vec![0]));
    planner.end_run();
    // 30 bytes of new data follow; the next run re-uses chunk 1 after them.
    planner.add(100..200);
    assert_eq!(planner.decide(130), Verdict::Reuse);
    let (offset, chunks) = planner.place(&(100..200), 130);
    assert_eq!((offset, numbers(&chunks)), (130, vec![1]));
}

#[test]
fn a_run_sharing_the_last_appended_chunk_appends_nothing_twice() {
    let mut planner = Planner::new(previous(4));
    planner.add(0..150);
    planner.decide(0);
    let (_, chunks) = planner.place(&(0..150), 0);
    assert_eq!(numbers(&chunks), [0, 1]);
    planner.end_run();
    // A file further on in chunk 1 (the one between was deleted): chunk 1 is already the
    // payload's last chunk, so the run costs nothing and is re-used even though alone it
    // would be mostly padding.
    assert!(planner.continues_run(&(170..190)) || !planner.has_run());
    planner.add(170..190);
    assert_eq!(planner.decide(200), Verdict::Reuse);
    let (offset, chunks) = planner.place(&(170..190), 200);
    assert_eq!((offset, chunks.len()), (170, 0));
    // A file two chunks on does not continue the run.
    assert!(!planner.continues_run(&(320..340)));
}

#[test]
fn a_gap_of_whole_chunks_ends_the_run_and_starts_a_new_block() {
    let mut planner = Planner::new(previous(6));
    planner.add(0..100);
    assert!(!planner.continues_run(&(250..300)), "chunk 2 is skipped");
    planner.decide(0);
    planner.place(&(0..100), 0);
    planner.end_run();
    planner.add(300..400);
    planner.decide(100);
    let (offset, chunks) = planner.place(&(300..400), 100);
    assert_eq!((offset, numbers(&chunks)), (100, vec![3]));
}

#[test]
fn long_runs_commit_before_they_end() {
    let mut planner = Planner::new(previous(20));
    for i in 0..COMMIT_CHUNKS as u64 - 1 {
        planner.add(i * 100..(i + 1) * 100);
        assert!(!planner.ready_to_commit(0), "{i}");
    }
    let last = COMMIT_CHUNKS as u64 - 1;
    planner.add(last * 100..(last + 1) * 100);
    assert!(planner.ready_to_commit(0));
    assert_eq!(planner.decide(0), Verdict::Reuse);
    assert!(planner.add(800..900), "later files join the committed run");
}

#[test]
fn padding_over_the_limit_is_refused_at_any_length() {
    let mut planner = Planner::new(previous(20));
    // Every chunk half used: 50% padding.
    for i in 0..12u64 {
        planner.add(i * 100..i * 100 + 50);
    }
    assert!(!planner.ready_to_commit(0));
    assert_eq!(planner.decide(0), Verdict::Read);
}
