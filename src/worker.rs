//! worker (to be written)
