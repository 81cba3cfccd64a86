//! Comparisons that fail closed and the mean of embeddings: every gate of the policy is written
//! "fail unless this holds", so a NaN fails it (issue 10, finding 13).

use crate::face::encode::Embedding;

/// `a >= b`, false when either is NaN. Every gate is written "fail unless this holds", so a
/// NaN fails it.
pub(super) fn ge(a: f32, b: f32) -> bool {
    matches!(
        a.partial_cmp(&b),
        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
    )
}

/// `a < b`, false when either is NaN.
pub(super) fn lt(a: f32, b: f32) -> bool {
    a.partial_cmp(&b) == Some(std::cmp::Ordering::Less)
}

pub(super) fn is_finite(e: &Embedding) -> bool {
    e.0.iter().all(|x| x.is_finite())
}

/// The mean of the finite embeddings, `None` if there are none.
pub(super) fn mean_embedding<'a>(es: impl Iterator<Item = &'a Embedding>) -> Option<Embedding> {
    Embedding::mean(es.filter(|e| is_finite(e))).filter(is_finite)
}
