use super::*;

fn digest(i: u8) -> Digest {
    Digest([i; 32])
}

/// Chunks of 100 bytes each: [0,100), [100,200), ...
fn previous(chunks: u8) -> PreviousPayload {
    PreviousPayload::new((0..chunks).map(|i| (digest(i), 100 * (u64::from(i) + 1)))).unwrap()
}

/// The chunk numbers a placement appends, and its offset (`None`: read the file).
fn placed(placement: Placement) -> Option<(u64, Vec<u8>)> {
    match placement {
        Placement::Reuse { offset, append } => {
            Some((offset, append.iter().map(|c| c.digest.0[0]).collect()))
        }
        Placement::Read => None,
    }
}

/// Places `range` and returns (offset, appended chunks), advancing `pos` by what was
/// appended.
fn reuse(planner: &mut Planner, range: Range<u64>, pos: &mut u64) -> Option<(u64, Vec<u8>)> {
    let placement = planner.place(&range, *pos);
    if let Placement::Reuse { append, .. } = &placement {
        *pos += append.iter().map(|c| c.size).sum::<u64>();
    }
    placed(placement)
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
    let mut pos = 0;
    let files = [0..50, 50..100, 100..250, 250..400];
    let mut appended = Vec::new();
    for range in files.clone() {
        assert!(planner.in_bounds(&range));
        let (offset, chunks) = reuse(&mut planner, range.clone(), &mut pos).unwrap();
        assert_eq!(offset, range.start);
        appended.extend(chunks);
    }
    assert_eq!(appended, [0, 1, 2, 3], "each chunk once, in order");
    assert_eq!(pos, 400);
    let stats = planner.stats();
    assert_eq!((stats.files, stats.bytes, stats.padding()), (4, 400, 0));
    assert!(!planner.in_bounds(&(350..401)));
}

#[test]
fn files_after_new_data_point_back_into_chunks_already_appended() {
    let mut planner = Planner::new(previous(4));
    let mut pos = 0;
    assert_eq!(reuse(&mut planner, 0..40, &mut pos), Some((0, vec![0])));
    // A changed file's 30 new bytes follow chunk 0 ...
    pos += 30;
    // ... and the next unchanged file in chunk 0 points back into it, appending nothing.
    assert_eq!(reuse(&mut planner, 60..100, &mut pos), Some((60, vec![])));
    // A file starting in chunk 1 gets chunk 1 appended after the new bytes.
    assert_eq!(
        reuse(&mut planner, 100..150, &mut pos),
        Some((130, vec![1]))
    );
    assert_eq!(planner.stats().padding(), 200 - 130);
}

#[test]
fn a_file_continuing_the_last_block_appends_only_its_missing_chunks() {
    let mut planner = Planner::new(previous(4));
    let mut pos = 0;
    assert_eq!(reuse(&mut planner, 0..50, &mut pos), Some((0, vec![0])));
    // Spans chunks 0 and 1; chunk 0 ends the payload, so only chunk 1 is appended.
    assert_eq!(reuse(&mut planner, 50..160, &mut pos), Some((50, vec![1])));
    assert_eq!(pos, 200);
}

#[test]
fn a_small_file_is_read_rather_than_duplicating_a_chunk() {
    let mut planner = Planner::new(previous(4));
    let mut pos = 0;
    assert_eq!(reuse(&mut planner, 0..50, &mut pos), Some((0, vec![0])));
    pos += 10; // new data after chunk 0
    // Spans chunks 0 and 1, but chunk 0 no longer ends the payload: re-using would append
    // chunk 0 a second time, 100 bytes for a 60-byte file.
    assert_eq!(planner.place(&(90..150), pos), Placement::Read);
    // A large file may be worth a duplicate.
    let mut planner = Planner::new(previous(8));
    let mut pos = 0;
    reuse(&mut planner, 0..50, &mut pos).unwrap();
    pos += 10;
    assert_eq!(
        reuse(&mut planner, 90..650, &mut pos),
        Some((110 + 90, vec![0, 1, 2, 3, 4, 5, 6]))
    );
}

#[test]
fn mostly_dead_chunks_are_rewritten_not_carried_on() {
    let mut payload = previous(4);
    // Chunk 0: 95 of 100 bytes used before; chunk 1: only 50.
    payload.set_dead(&[(0, 5), (100, 50)]);
    let mut planner = Planner::new(payload);
    let mut pos = 0;
    assert_eq!(reuse(&mut planner, 0..40, &mut pos), Some((0, vec![0])));
    assert_eq!(planner.place(&(100..140), pos), Placement::Read);
    // A file that outweighs the dead bytes is still worth re-using.
    assert_eq!(
        reuse(&mut planner, 150..400, &mut pos),
        Some((150, vec![1, 2, 3]))
    );
}

#[test]
fn padding_beyond_the_budget_makes_files_read() {
    // 100 chunks; every chunk holds one live 10-byte file, the rest changed or deleted.
    let mut planner = Planner::new(previous(100));
    let mut pos = 0u64;
    let mut reused = 0;
    for i in 0..100u64 {
        match planner.place(&(i * 100..i * 100 + 10), pos) {
            Placement::Reuse { append, .. } => {
                reused += 1;
                pos += append.iter().map(|c| c.size).sum::<u64>();
            }
            Placement::Read => pos += 10 + 24,
        }
        let padding = planner.stats().padding();
        assert!(padding <= pos / 5 + 200, "{i}: padding {padding} at {pos}");
    }
    assert!(reused < 30, "{reused} files re-used 90% padding");
}

#[test]
fn dead_bytes_are_reported_per_copy_and_read_back_as_usage() {
    let mut planner = Planner::new(previous(4));
    let mut pos = 0;
    reuse(&mut planner, 0..40, &mut pos).unwrap();
    reuse(&mut planner, 60..100, &mut pos).unwrap();
    pos += 30; // new data
    reuse(&mut planner, 100..150, &mut pos).unwrap();
    // Copies: chunk 0 at 0 (80 of 100 used), chunk 1 at 130 (50 used).
    assert_eq!(planner.dead_chunks(), [(0, 20), (130, 50)]);
    // The next backup's view of this payload (chunks: 0..100, new data, 130..230).
    let mut next =
        PreviousPayload::new([(digest(0), 100), (digest(9), 130), (digest(1), 230)]).unwrap();
    next.set_dead(&planner.dead_chunks());
    assert_eq!(next.live, Some(vec![80, 30, 50]));
    next.set_dead(&[(5, 7), (999, 1)]);
    assert_eq!(
        next.live,
        Some(vec![100, 30, 100]),
        "unknown offsets are ignored"
    );
}
