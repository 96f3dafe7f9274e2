//! The plain-log front end.
