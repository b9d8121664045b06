//! admin (to be written)
