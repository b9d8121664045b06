//! Placeholder until the generated table lands.
use super::{ArgList, CommandSpec};

pub(super) fn lookup(_name: &[u8]) -> Option<&'static CommandSpec> {
    None
}
pub(super) fn lookup_request<A: ArgList + ?Sized>(_args: &A) -> Option<&'static CommandSpec> {
    None
}
pub(super) fn key_indices<A: ArgList + ?Sized>(_s: &CommandSpec, _a: &A, _o: &mut Vec<usize>) {}
