//! The build engine, its events and its controller.
