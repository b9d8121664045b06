//! routing (to be written)
