//! REST API (work in progress).
