//! Dockerfile parsing, expansion, .dockerignore and the stage graph.
