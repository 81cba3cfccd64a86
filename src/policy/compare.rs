//! Comparisons that fail closed and the mean of embeddings: every gate of the policy is written
//! "fail unless this holds", so a NaN fails it (issue 10, finding 13).

use crate::face::encode::{Embedding, EMBEDDING_DIM};

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
    let mut sum = [0f32; EMBEDDING_DIM];
    let mut n = 0u32;
    for e in es.filter(|e| is_finite(e)) {
        for (s, x) in sum.iter_mut().zip(e.0) {
            *s += x;
        }
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let m = Embedding(sum.map(|s| s / n as f32));
    is_finite(&m).then_some(m)
}
