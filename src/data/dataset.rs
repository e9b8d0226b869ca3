//! Labelled face data sets on disk, in CelebA's layout so that real CelebA drops in unchanged:
//!
//! - `img_align_celeba/` the images (any one size);
//! - `list_attr_celeba.txt`: line 1 the image count, line 2 the attribute names, then one row
//!   per image: file name and 1 / -1 per attribute;
//! - `list_eval_partition.txt`: file name and 0 (train), 1 (validation) or 2 (test).
//!
//! A plain `attributes.csv` (header `file,<attr>,...[,split]`, values 1/-1 or 1/0) is read
//! too. deepface also writes `attr_confidence.csv`: the labeller's probability for each sign.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub const ATTR_FILE: &str = "list_attr_celeba.txt";
pub const PARTITION_FILE: &str = "list_eval_partition.txt";
pub const CSV_FILE: &str = "attributes.csv";
pub const CONFIDENCE_FILE: &str = "attr_confidence.csv";
pub const IMAGE_DIR: &str = "img_align_celeba";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train = 0,
    Val = 1,
    Test = 2,
}

impl Split {
    pub fn name(self) -> &'static str {
        ["train", "validation", "test"][self as usize]
    }
    /// A fixed 80/10/10 split by a hash of the file name: stable when images are added.
    pub fn of_name(file: &str) -> Split {
        let h = file.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        match h % 10 {
            0 => Split::Val,
            1 => Split::Test,
            _ => Split::Train,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub image_dir: PathBuf,
    pub attributes: Vec<String>,
    pub files: Vec<String>,
    /// ±1 per image and attribute.
    pub labels: Vec<Vec<i8>>,
    pub splits: Vec<Split>,
    /// Probability of each label's sign, when the labeller recorded it.
    pub confidence: Option<Vec<Vec<f32>>>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), e)
}

fn at(path: &Path, line: usize, reason: impl std::fmt::Display) -> Error {
    Error::format(format!("{}:{line}", path.display()), reason.to_string())
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    pub fn image_path(&self, i: usize) -> PathBuf {
        self.image_dir.join(&self.files[i])
    }

    /// Loads CelebA-format files, else `attributes.csv`. Every row is checked: column count,
    /// label values, and that its image exists.
    pub fn load(root: &Path) -> Result<Dataset> {
        let image_dir = if root.join(IMAGE_DIR).is_dir() { root.join(IMAGE_DIR) } else { root.to_path_buf() };
        let (attributes, files, labels, mut splits) = if root.join(ATTR_FILE).exists() {
            read_celeba(&root.join(ATTR_FILE))?
        } else if root.join(CSV_FILE).exists() {
            read_csv(&root.join(CSV_FILE))?
        } else {
            return Err(Error::format(root.display(), format!("no labels: expected {ATTR_FILE} (CelebA format) or {CSV_FILE}")));
        };
        for (i, f) in files.iter().enumerate() {
            if !image_dir.join(f).is_file() {
                let (file, line) = if root.join(ATTR_FILE).exists() { (ATTR_FILE, i + 3) } else { (CSV_FILE, i + 2) };
                return Err(at(&root.join(file), line, format!("image `{f}` not found in {}", image_dir.display())));
            }
        }
        let part = root.join(PARTITION_FILE);
        if part.exists() {
            splits = Some(read_partition(&part, &files)?);
        }
        let splits = splits.unwrap_or_else(|| files.iter().map(|f| Split::of_name(f)).collect());
        let confidence = read_confidence(&root.join(CONFIDENCE_FILE), &files, attributes.len())?;
        Ok(Dataset { root: root.to_path_buf(), image_dir, attributes, files, labels, splits, confidence })
    }

    /// All images must share one size; returns it, or names the first that differs.
    pub fn image_size(&self) -> Result<(u32, u32)> {
        let mut size = None;
        for i in 0..self.len() {
            let p = self.image_path(i);
            let d = image::image_dimensions(&p).map_err(|e| Error::Image { what: p.display().to_string(), reason: e.to_string() })?;
            match size {
                None => size = Some((d, i)),
                Some((s, first)) if s != d => {
                    return Err(Error::format(
                        p.display(),
                        format!("is {}x{}, but {} is {}x{}: a data set's images must all have one size", d.0, d.1, self.files[first], s.0, s.1),
                    ))
                }
                _ => {}
            }
        }
        size.map(|(s, _)| s).ok_or_else(|| Error::format(self.root.display(), "the data set has no images"))
    }

    /// Positive count per attribute in `split` (all splits when None).
    pub fn positives(&self, split: Option<Split>) -> Vec<usize> {
        let mut counts = vec![0; self.attributes.len()];
        for (row, s) in self.labels.iter().zip(&self.splits) {
            if split.is_none_or(|x| x == *s) {
                for (c, &v) in counts.iter_mut().zip(row) {
                    *c += usize::from(v > 0);
                }
            }
        }
        counts
    }

    /// Writes the label files (CelebA format, CSV, confidences, partition). Each file is
    /// written under a temporary name and renamed, so a crash leaves no half-written file
    /// under a final name.
    pub fn write(&self) -> Result<()> {
        let mut attr = format!("{}\n{}\n", self.len(), self.attributes.join(" "));
        let mut csv = format!("file,{},split\n", self.attributes.join(","));
        let mut part = String::new();
        for (i, f) in self.files.iter().enumerate() {
            let row: Vec<String> = self.labels[i].iter().map(|v| format!("{v:>2}")).collect();
            let _ = writeln!(attr, "{f} {}", row.join(" "));
            let _ = writeln!(csv, "{f},{},{}", self.labels[i].iter().map(i8::to_string).collect::<Vec<_>>().join(","), self.splits[i].name());
            let _ = writeln!(part, "{f} {}", self.splits[i] as u8);
        }
        let mut files = vec![(ATTR_FILE, attr), (CSV_FILE, csv), (PARTITION_FILE, part)];
        if let Some(conf) = &self.confidence {
            let mut c = format!("file,{}\n", self.attributes.join(","));
            for (f, row) in self.files.iter().zip(conf) {
                let _ = writeln!(c, "{f},{}", row.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(","));
            }
            files.push((CONFIDENCE_FILE, c));
        }
        for (name, text) in files {
            crate::util::platform::write_atomic(&self.root.join(name), |f| f.write_all(text.as_bytes()))?;
        }
        Ok(())
    }
}

type Parsed = (Vec<String>, Vec<String>, Vec<Vec<i8>>, Option<Vec<Split>>);

fn label_value(s: &str) -> Option<i8> {
    match s {
        "1" => Some(1),
        "-1" | "0" => Some(-1),
        _ => None,
    }
}

fn read_celeba(path: &Path) -> Result<Parsed> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut lines = text.lines();
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| at(path, 1, "first line must be the number of images"))?;
    let attributes: Vec<String> = lines.next().ok_or_else(|| at(path, 2, "second line must list the attribute names"))?.split_whitespace().map(String::from).collect();
    if attributes.is_empty() {
        return Err(at(path, 2, "no attribute names"));
    }
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 3;
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != attributes.len() + 1 {
            return Err(at(path, n, format!("{} columns, expected {} (file name + {} attributes)", cols.len(), attributes.len() + 1, attributes.len())));
        }
        let row = cols[1..].iter().enumerate().map(|(j, v)| label_value(v).ok_or_else(|| at(path, n, format!("`{v}` for {} is not 1 or -1", attributes[j])))).collect::<Result<Vec<_>>>()?;
        files.push(cols[0].to_string());
        labels.push(row);
    }
    if files.len() != count {
        return Err(at(path, 1, format!("says {count} images but {} rows follow", files.len())));
    }
    Ok((attributes, files, labels, None))
}

fn read_csv(path: &Path) -> Result<Parsed> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or_else(|| at(path, 1, "empty file; expected a header `file,<attribute>,...`"))?.split(',').map(str::trim).collect();
    let has_split = header.last() == Some(&"split");
    let attributes: Vec<String> = header[1..header.len() - usize::from(has_split)].iter().map(|s| s.to_string()).collect();
    if attributes.is_empty() {
        return Err(at(path, 1, "no attribute columns"));
    }
    let (mut files, mut labels, mut splits) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 2;
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() != header.len() {
            return Err(at(path, n, format!("{} columns, expected {}", cols.len(), header.len())));
        }
        let row = (0..attributes.len()).map(|j| label_value(cols[j + 1]).ok_or_else(|| at(path, n, format!("`{}` for {} is not 1, -1 or 0", cols[j + 1], attributes[j])))).collect::<Result<Vec<_>>>()?;
        if has_split {
            splits.push(match cols[cols.len() - 1] {
                "train" => Split::Train,
                "validation" | "val" => Split::Val,
                "test" => Split::Test,
                s => return Err(at(path, n, format!("split `{s}`; expected train, validation or test"))),
            });
        }
        files.push(cols[0].to_string());
        labels.push(row);
    }
    Ok((attributes, files, labels, has_split.then_some(splits)))
}

fn read_partition(path: &Path, files: &[String]) -> Result<Vec<Split>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let split = match cols.as_slice() {
            [_, "0"] => Split::Train,
            [_, "1"] => Split::Val,
            [_, "2"] => Split::Test,
            _ => return Err(at(path, i + 1, "expected `<file> <0|1|2>`")),
        };
        if map.insert(cols[0].to_string(), split).is_some() {
            return Err(at(path, i + 1, format!("`{}` is listed twice: splits must not overlap", cols[0])));
        }
    }
    files.iter().map(|f| map.get(f).copied().ok_or_else(|| Error::format(path.display(), format!("has no split for `{f}`")))).collect()
}

fn read_confidence(path: &Path, files: &[String], n: usize) -> Result<Option<Vec<Vec<f32>>>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != n + 1 {
            return Err(at(path, i + 1, format!("{} columns, expected {}", cols.len(), n + 1)));
        }
        let row = cols[1..].iter().map(|v| v.trim().parse::<f32>().map_err(|_| at(path, i + 1, format!("`{v}` is not a number")))).collect::<Result<Vec<_>>>()?;
        map.insert(cols[0].to_string(), row);
    }
    Ok(Some(files.iter().map(|f| map.remove(f).unwrap_or_else(|| vec![f32::NAN; n])).collect()))
}
