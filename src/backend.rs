//! backend (to be written)
