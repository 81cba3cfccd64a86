//! The gallery: enrolled people and their reference embeddings, and 1:N matching.
//!
//! Matching reports the best *identity* and the runner-up identity, so the door policy can
//! require a margin between them (a face halfway between two staff members is not either).
//!
//! A person enrolled from several photos is matched by the *mean* of their embeddings (one
//! template per person), not by the nearest photo: on the dev sets (`facegate eval-enroll`,
//! issue 13 item 5) the mean gives the higher TAR at every FAR from 3 photos on (CelebA, 5
//! photos: TAR at FAR 1e-4 88.3% against 81.3% for the nearest photo), and a quality-weighted
//! mean or a mean of unit-length embeddings did no better. With one photo the rules agree.

use crate::face::encode::{squared_distance, Embedding, EMBEDDING_DIM};
use crate::policy::fusion::weighted_mean;
use serde::{Deserialize, Serialize};

/// One enrolled person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub embeddings: Vec<Embedding>,
    /// When and at which times of the week this person may enter.
    #[serde(default)]
    pub access: Access,
}

/// Validity dates and an optional weekly schedule (local time of the door).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<jiff::Timestamp>,
    /// Empty: any time. Otherwise entry is allowed inside any of the windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Window>,
}

/// A weekly window, e.g. Monday to Friday 07:00 to 19:00.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Vec<Day>,
    pub from: jiff::civil::Time,
    pub to: jiff::civil::Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn of(w: jiff::civil::Weekday) -> Day {
        use jiff::civil::Weekday as W;
        match w {
            W::Monday => Day::Mon,
            W::Tuesday => Day::Tue,
            W::Wednesday => Day::Wed,
            W::Thursday => Day::Thu,
            W::Friday => Day::Fri,
            W::Saturday => Day::Sat,
            W::Sunday => Day::Sun,
        }
    }
}

/// Why a person's access rules refuse entry now ([`Access::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDenied {
    /// Before `not_before`.
    NotYetValid,
    /// After `not_after`.
    Expired,
    /// Outside every window of the weekly schedule.
    OutsideSchedule,
}

impl AccessDenied {
    /// The stable snake_case name (the `reason_code` of a deny audit record).
    pub fn code(self) -> &'static str {
        match self {
            AccessDenied::NotYetValid => "not_yet_valid",
            AccessDenied::Expired => "expired",
            AccessDenied::OutsideSchedule => "outside_schedule",
        }
    }
}

impl std::fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccessDenied::NotYetValid => "not yet valid",
            AccessDenied::Expired => "expired",
            AccessDenied::OutsideSchedule => "outside schedule",
        })
    }
}

/// Serialized as its text (as the `&str` it replaces was).
impl Serialize for AccessDenied {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Access {
    /// `Ok` when entry is allowed at `now`, else the reason it is not.
    pub fn check(&self, now: &jiff::ZonedDateTime) -> Result<(), AccessDenied> {
        let ts = now.timestamp();
        if self.not_before.is_some_and(|t| ts < t) {
            return Err(AccessDenied::NotYetValid);
        }
        if self.not_after.is_some_and(|t| ts > t) {
            return Err(AccessDenied::Expired);
        }
        if self.schedule.is_empty() {
            return Ok(());
        }
        let day = Day::of(now.weekday());
        let time = now.time();
        let inside = self
            .schedule
            .iter()
            .any(|w| w.days.contains(&day) && time >= w.from && time < w.to);
        if inside {
            Ok(())
        } else {
            Err(AccessDenied::OutsideSchedule)
        }
    }
}

/// The result of matching one probe against the gallery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub id: String,
    pub distance: f32,
    /// The closest *other* identity, if any.
    pub runner_up: Option<(String, f32)>,
}

/// Enrolled people, with one template per person (the mean of their finite embeddings) laid
/// out contiguously for fast scanning.
#[derive(Debug, Clone, Default)]
pub struct Gallery {
    people: Vec<Person>,
    flat: Vec<[f32; EMBEDDING_DIM]>,
    owner: Vec<u32>,
    embeddings: usize,
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
        self.embeddings = 0;
        for (i, p) in self.people.iter().enumerate() {
            self.embeddings += p.embeddings.len();
            // A person without a finite embedding has no template and matches nobody.
            if let Some(t) = weighted_mean(p.embeddings.iter().map(|e| (e, 1.0))) {
                self.flat.push(t.0);
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

    /// Enrolled embeddings (photos), over every person.
    pub fn num_embeddings(&self) -> usize {
        self.embeddings
    }

    /// The nearest enrolled identity (by the distance to its template, the mean of its
    /// embeddings) and the runner-up identity. `None` for an empty gallery.
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

    /// Issue 13 item 5: a person's template is the mean of their embeddings; the runner-up is
    /// another identity.
    #[test]
    fn best_and_runner_up_are_distinct_identities() {
        let g = Gallery::from_people(vec![
            Person {
                id: "a".into(),
                name: "A".into(),
                embeddings: vec![emb(1.0, 0), emb(0.9, 0)],
                access: Access::default(),
            },
            Person {
                id: "b".into(),
                name: "B".into(),
                embeddings: vec![emb(1.0, 1)],
                access: Access::default(),
            },
        ]);
        assert_eq!(g.num_embeddings(), 3);
        // a's template is the mean 0.95 on axis 0: a probe at 1.0 is 0.05 from it (0.0 from
        // the nearest photo, which the gallery no longer uses)
        let m = g.best_match(&emb(1.0, 0)).unwrap();
        assert_eq!(m.id, "a");
        assert!((m.distance - 0.05).abs() < 1e-6, "{}", m.distance);
        let m = g.best_match(&emb(0.95, 0)).unwrap();
        assert_eq!(m.id, "a");
        assert!(m.distance.abs() < 1e-6);
        let (rid, rd) = m.runner_up.unwrap();
        assert_eq!(rid, "b");
        assert!((rd - (0.95f32 * 0.95 + 1.0).sqrt()).abs() < 1e-6);
        // A probe nearest b, with both of a's embeddings after it, still ranks a second.
        let m = g.best_match(&emb(1.0, 1)).unwrap();
        assert_eq!(m.id, "b");
        assert_eq!(m.runner_up.unwrap().0, "a");
    }

    #[test]
    fn access_dates_and_weekly_schedule() {
        let a: Access = toml::from_str(
            r#"
            not_before = "2026-01-01T00:00:00Z"
            not_after = "2026-12-31T23:59:59Z"
            schedule = [{ days = ["mon", "tue", "wed", "thu", "fri"], from = "07:00", to = "19:00" }]
            "#,
        )
        .unwrap();
        let at = |s: &str| s.parse::<jiff::ZonedDateTime>().unwrap();
        // Monday 30 November 2026, 09:00 in Paris
        assert_eq!(a.check(&at("2026-11-30T09:00[Europe/Paris]")), Ok(()));
        assert_eq!(
            a.check(&at("2026-11-30T19:00[Europe/Paris]")),
            Err(AccessDenied::OutsideSchedule)
        );
        assert_eq!(
            a.check(&at("2026-11-29T09:00[Europe/Paris]")),
            Err(AccessDenied::OutsideSchedule)
        );
        assert_eq!(
            a.check(&at("2025-11-28T09:00[Europe/Paris]")),
            Err(AccessDenied::NotYetValid)
        );
        assert_eq!(
            a.check(&at("2027-01-04T09:00[Europe/Paris]")),
            Err(AccessDenied::Expired)
        );
        assert_eq!(
            Access::default().check(&at("2027-01-03T03:00[UTC]")),
            Ok(())
        );
    }

    #[test]
    fn removal_and_empty_gallery() {
        let mut g = Gallery::from_people(vec![Person {
            id: "a".into(),
            name: "A".into(),
            embeddings: vec![emb(1.0, 0)],
            access: Access::default(),
        }]);
        assert!(g.remove("a"));
        assert!(!g.remove("a"));
        // a person whose only embedding is not finite has no template: never matched
        let g = Gallery::from_people(vec![Person {
            id: "nan".into(),
            name: "N".into(),
            embeddings: vec![Embedding([f32::NAN; EMBEDDING_DIM])],
            access: Access::default(),
        }]);
        assert_eq!((g.len(), g.num_embeddings()), (1, 1));
        assert!(g.best_match(&emb(1.0, 0)).is_none());
        let mut g = g;
        assert!(g.remove("nan"));
        assert!(g.best_match(&emb(1.0, 0)).is_none());
        assert_eq!(g.num_embeddings(), 0);
    }
}
