//! The terminal debugger (issue 5).
