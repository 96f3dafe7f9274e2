//! How RUN executes.
