//! The index's own invariants: node size, time conversion.

use super::*;

#[test]
fn index_nodes_stay_lean() {
    // 800k paths must fit comfortably: keep a node (plus its name) around 150 bytes.
    assert!(std::mem::size_of::<Node>() <= 136, "{}", std::mem::size_of::<Node>());
}

#[test]
fn nanosecond_times() {
    assert_eq!(ns(super::super::Timespec::new(1, 5)), 1_000_000_005);
    assert_eq!(ns(super::super::Timespec::new(-1, 500_000_000)), -500_000_000);
    assert_eq!(ns(super::super::Timespec::new(i64::MAX, 0)), i64::MAX);
}
