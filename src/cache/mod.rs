//! Layer cache and base-image cache directory (issue 3).
