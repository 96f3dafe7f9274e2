//! Trace recording and loading for `trowel replay` (issue 4).
