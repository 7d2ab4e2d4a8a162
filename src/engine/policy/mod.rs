//! Platform conventions: `InitPolicy` documents and namespace defaults. Pure: the webhook's
//! reflectors and `inject --policy` hand the engine a snapshot of what is in force.

pub mod apply;
pub mod crd;
pub mod select;
pub mod validate;
