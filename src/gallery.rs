//! The gallery: enrolled people and their reference embeddings, and 1:N matching.
//!
//! Matching reports the best *identity* and the runner-up identity, so the door policy can
//! require a margin between them (a face halfway between two staff members is not either).

use crate::face::encode::{squared_distance, Embedding, EMBEDDING_DIM};
use serde::{Deserialize, Serialize};

/// One enrolled person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub embeddings: Vec<Embedding>,
}

/// The result of matching one probe against the gallery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub id: String,
    pub distance: f32,
    /// The closest *other* identity, if any.
    pub runner_up: Option<(String, f32)>,
}

/// Enrolled people, with their embeddings laid out contiguously for fast scanning.
#[derive(Debug, Clone, Default)]
pub struct Gallery {
    people: Vec<Person>,
    flat: Vec<[f32; EMBEDDING_DIM]>,
    owner: Vec<u32>,
}

impl Gallery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_people(people: Vec<Person>) -> Self {
        let mut g = Gallery::new();
        for p in people {
            g.upsert(p);
        }
        g
    }

    /// Adds a person, replacing any person with the same id.
    pub fn upsert(&mut self, person: Person) {
        self.people.retain(|p| p.id != person.id);
        self.people.push(person);
        self.reindex();
    }

    /// Removes a person; returns whether they were enrolled.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.people.len();
        self.people.retain(|p| p.id != id);
        let removed = self.people.len() != before;
        if removed {
            self.reindex();
        }
        removed
    }

    fn reindex(&mut self) {
        self.flat.clear();
        self.owner.clear();
        for (i, p) in self.people.iter().enumerate() {
            for e in &p.embeddings {
                self.flat.push(e.0);
                self.owner.push(i as u32);
            }
        }
    }

    pub fn people(&self) -> &[Person] {
        &self.people
    }

    pub fn get(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    pub fn num_embeddings(&self) -> usize {
        self.flat.len()
    }

    /// The nearest enrolled identity (by its nearest reference embedding) and the runner-up
    /// identity. `None` for an empty gallery.
    pub fn best_match(&self, probe: &Embedding) -> Option<Match> {
        let mut best: Option<(u32, f32)> = None;
        let mut second: Option<(u32, f32)> = None;
        for (e, &owner) in self.flat.iter().zip(&self.owner) {
            let d = squared_distance(&probe.0, e);
            match best {
                Some((bo, bd)) if d >= bd => {
                    if bo != owner && second.is_none_or(|(_, sd)| d < sd) {
                        second = Some((owner, d));
                    }
                }
                _ => {
                    if let Some((bo, bd)) = best {
                        if bo != owner {
                            second = Some((bo, bd));
                        }
                    }
                    best = Some((owner, d));
                }
            }
        }
        let (bo, bd) = best?;
        Some(Match {
            id: self.people[bo as usize].id.clone(),
            distance: bd.sqrt(),
            runner_up: second.map(|(o, d)| (self.people[o as usize].id.clone(), d.sqrt())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(v: f32, k: usize) -> Embedding {
        let mut a = [0.0; EMBEDDING_DIM];
        a[k] = v;
        Embedding(a)
    }

    #[test]
    fn best_and_runner_up_are_distinct_identities() {
        let g = Gallery::from_people(vec![
            Person {
                id: "a".into(),
                name: "A".into(),
                embeddings: vec![emb(1.0, 0), emb(0.9, 0)],
            },
            Person {
                id: "b".into(),
                name: "B".into(),
                embeddings: vec![emb(1.0, 1)],
            },
        ]);
        let m = g.best_match(&emb(0.95, 0)).unwrap();
        assert_eq!(m.id, "a");
        assert!((m.distance - 0.05).abs() < 1e-6);
        let (rid, rd) = m.runner_up.unwrap();
        assert_eq!(rid, "b");
        assert!((rd - (0.95f32 * 0.95 + 1.0).sqrt()).abs() < 1e-6);
        // A probe nearest b, with both of a's embeddings after it, still ranks a second.
        let m = g.best_match(&emb(1.0, 1)).unwrap();
        assert_eq!(m.id, "b");
        assert_eq!(m.runner_up.unwrap().0, "a");
    }

    #[test]
    fn removal_and_empty_gallery() {
        let mut g = Gallery::from_people(vec![Person {
            id: "a".into(),
            name: "A".into(),
            embeddings: vec![emb(1.0, 0)],
        }]);
        assert!(g.remove("a"));
        assert!(!g.remove("a"));
        assert!(g.best_match(&emb(1.0, 0)).is_none());
        assert_eq!(g.num_embeddings(), 0);
    }
}
