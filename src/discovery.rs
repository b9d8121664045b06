//! discovery (to be written)
