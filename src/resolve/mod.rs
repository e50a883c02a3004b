//! Bundle + charm repository → one resolved [`Model`].

pub mod model;

pub use model::{Application, Image, Model, Relation, RelationData, Setting, Source};
