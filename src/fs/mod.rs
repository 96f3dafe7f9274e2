//! Filesystem: the in-root file operations, layer unpacking, snapshots and layer writing.
