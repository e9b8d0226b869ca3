//! The attribute vocabulary: names, mutually exclusive groups, short descriptions, and the
//! parser for requests such as `Male,Smiling=0.5,-Eyeglasses`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Groups of mutually exclusive attributes (PubFig and CelebA names). A group is used when at
/// least two of its members are in a data set; every other attribute is independent.
const KNOWN_GROUPS: &[(&str, &[&str])] = &[
    ("Age", &["Child", "Youth", "Middle_Aged", "Senior"]),
    ("Hair colour", &["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]),
    ("Race", &["Asian", "White", "Black", "Indian"]),
    ("Face shape", &["Oval_Face", "Round_Face", "Square_Face"]),
    ("Expression", &["Smiling", "Frowning"]),
];

const DESCRIPTIONS: &[(&str, &str)] = &[
    ("Male", "looks male (absent: looks female)"),
    ("Child", "age group: under 13"),
    ("Youth", "age group: 13 to 29"),
    ("Middle_Aged", "age group: 30 to 59"),
    ("Senior", "age group: 60 and over"),
    ("Smiling", "smiling"),
    ("Eyeglasses", "wears glasses"),
    ("Young", "looks young"),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// Indices into [`Vocabulary::names`].
    pub members: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub names: Vec<String>,
    pub groups: Vec<Group>,
}

/// One requested attribute: `strength` 1 asks for it fully, 0.5 halfway, a negative value asks
/// for its absence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    pub attr: usize,
    pub strength: f32,
}

impl Vocabulary {
    pub fn new(names: &[String]) -> Result<Self> {
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || n.contains([',', '=', ' ']) || n.starts_with('-') {
                return Err(Error::invalid("attribute name", format!("`{n}` (names may not be empty, start with '-' or hold ',', '=' or spaces)")));
            }
            if names[..i].contains(n) {
                return Err(Error::invalid("attribute name", format!("`{n}` appears twice")));
            }
        }
        let groups = KNOWN_GROUPS
            .iter()
            .filter_map(|(g, members)| {
                let idx: Vec<usize> = members.iter().filter_map(|m| names.iter().position(|n| n == m)).collect();
                (idx.len() >= 2).then(|| Group { name: g.to_string(), members: idx })
            })
            .collect();
        Ok(Vocabulary { names: names.to_vec(), groups })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn group_of(&self, attr: usize) -> Option<&Group> {
        self.groups.iter().find(|g| g.members.contains(&attr))
    }

    /// Attributes in no group (each gets its own yes/no head).
    pub fn independent(&self) -> Vec<usize> {
        (0..self.len()).filter(|&a| self.group_of(a).is_none()).collect()
    }

    pub fn description(&self, attr: usize) -> String {
        let n = &self.names[attr];
        DESCRIPTIONS.iter().find(|(k, _)| k == n).map_or_else(|| n.replace('_', " ").to_lowercase(), |(_, d)| d.to_string())
    }

    pub fn index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name)).ok_or_else(|| {
            Error::invalid("attribute", format!("unknown attribute `{name}`; valid attributes: {}", self.names.join(", ")))
        })
    }

    /// Parses `Male,Smiling=0.5,-Senior`. Rules: a name at most once; strengths in [-1, 1]
    /// (`-X` is `X=-1`); two members of one exclusive group cannot both be asked for (a face
    /// is not both Child and Senior), while asking for one and the absence of another is fine.
    pub fn parse(&self, spec: &str) -> Result<Vec<Request>> {
        let mut out: Vec<Request> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (neg, item) = match item.strip_prefix('-') {
                Some(rest) => (true, rest.trim()),
                None => (false, item),
            };
            let (name, strength) = match item.split_once('=') {
                Some((n, v)) => {
                    let v: f32 = v.trim().parse().map_err(|_| Error::invalid("attribute strength", format!("`{item}`: `{}` is not a number", v.trim())))?;
                    (n.trim(), v)
                }
                None => (item, 1.0),
            };
            if !strength.is_finite() || !(-1.0..=1.0).contains(&strength) {
                return Err(Error::invalid("attribute strength", format!("`{item}`: strengths lie in [-1, 1]")));
            }
            let attr = self.index(name)?;
            if out.iter().any(|r| r.attr == attr) {
                return Err(Error::invalid("attributes", format!("`{}` is asked for twice", self.names[attr])));
            }
            out.push(Request { attr, strength: if neg { -strength } else { strength } });
        }
        for g in &self.groups {
            let wanted: Vec<&str> = out.iter().filter(|r| r.strength > 0.0 && g.members.contains(&r.attr)).map(|r| self.names[r.attr].as_str()).collect();
            if wanted.len() > 1 {
                return Err(Error::invalid(
                    "attributes",
                    format!("{} are mutually exclusive (group {}): ask for one of them", wanted.join(" and "), g.name),
                ));
            }
        }
        Ok(out)
    }

    /// The attribute vector a request stands for, starting from `base` (the "don't care"
    /// value of each attribute, e.g. its frequency): strength s moves an attribute a fraction
    /// s of the way to 1 (or, negative, to 0); asking for a group member also moves the other
    /// members toward 0 by the same fraction.
    pub fn vector(&self, requests: &[Request], base: &[f32]) -> Vec<f32> {
        let mut x = base.to_vec();
        for r in requests {
            let s = r.strength.abs();
            let goal = if r.strength > 0.0 { 1.0 } else { 0.0 };
            x[r.attr] += s * (goal - base[r.attr]);
            if r.strength > 0.0 {
                if let Some(g) = self.group_of(r.attr) {
                    for &m in g.members.iter().filter(|&&m| m != r.attr) {
                        x[m] -= s * base[m];
                    }
                }
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let names: Vec<String> = ["Male", "Child", "Youth", "Middle_Aged", "Senior", "Smiling"].map(String::from).to_vec();
        Vocabulary::new(&names).unwrap()
    }

    #[test]
    fn groups_and_parsing() {
        let v = vocab();
        assert_eq!(v.groups.len(), 1);
        assert_eq!(v.groups[0].members, vec![1, 2, 3, 4]);
        assert_eq!(v.independent(), vec![0, 5]);
        let r = v.parse("male, Smiling=0.5,-Senior").unwrap();
        assert_eq!(r, vec![Request { attr: 0, strength: 1.0 }, Request { attr: 5, strength: 0.5 }, Request { attr: 4, strength: -1.0 }]);
        let e = v.parse("Male,Beard").unwrap_err().to_string();
        assert!(e.contains("unknown attribute `Beard`; valid attributes: Male, Child"), "{e}");
        let e = v.parse("Child,Senior").unwrap_err().to_string();
        assert!(e.contains("Child and Senior are mutually exclusive (group Age)"), "{e}");
        assert!(v.parse("Child,-Senior").is_ok());
        assert!(v.parse("Male=2").unwrap_err().to_string().contains("strengths lie in [-1, 1]"));
        assert!(v.parse("Male,-Male").unwrap_err().to_string().contains("asked for twice"));
    }

    #[test]
    fn request_vector() {
        let v = vocab();
        let base = [0.5, 0.1, 0.5, 0.3, 0.1, 0.4];
        let x = v.vector(&v.parse("Senior,-Smiling=0.5").unwrap(), &base);
        let want = [0.5, 0.0, 0.0, 0.0, 1.0, 0.2];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{x:?}");
        }
    }
}
