//! Names for containers started without --name, made the way Docker makes
//! them: an adjective and a person from the history of computing and
//! science, joined by an underscore (`eager_hopper`).

const ADJECTIVES: [&str; 48] = [
    "admiring", "agile", "amazing", "bold", "brave", "bright", "busy", "calm", "clever", "cool", "crisp", "curious", "daring", "eager",
    "elated", "epic", "fervent", "festive", "fond", "gallant", "gentle", "happy", "hopeful", "jolly", "keen", "kind", "lucid", "merry",
    "modest", "nifty", "noble", "peaceful", "quirky", "quiet", "relaxed", "serene", "sharp", "silly", "steady", "stoic", "sweet", "tender",
    "trusting", "upbeat", "vibrant", "wizardly", "youthful", "zealous",
];

const PEOPLE: [&str; 48] = [
    "agnesi", "allen", "babbage", "bardeen", "bell", "boole", "borg", "cerf", "curie", "darwin", "dijkstra", "einstein", "euler",
    "faraday", "fermat", "feynman", "franklin", "gauss", "goldberg", "hamilton", "hawking", "hopper", "hypatia", "johnson", "kepler",
    "knuth", "lamarr", "lamport", "liskov", "lovelace", "maxwell", "meitner", "mirzakhani", "newton", "noether", "pascal", "perlman",
    "ritchie", "shannon", "shirley", "sinoussi", "tesla", "thompson", "torvalds", "turing", "wozniak", "yalow", "zuse",
];

/// A name from `random`; `taken` says which are in use. After a few tries
/// a number is appended, as Docker does, so that a name is always found.
pub fn generate(mut random: impl FnMut() -> u64, taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let r = random();
        let mut name = format!("{}_{}", ADJECTIVES[(r % 48) as usize], PEOPLE[((r >> 8) % 48) as usize]);
        if attempt >= 3 {
            name += &(r >> 16 & 0xffff).to_string();
        }
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop only ends by returning")
}

/// Docker's rule for --name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_dockers_and_avoid_taken_ones() {
        let mut n = 0u64;
        let first = generate(|| 0, |_| false);
        assert_eq!(first, "admiring_agnesi");
        let other = generate(
            || {
                n += 1;
                n
            },
            |name| name == "agile_agnesi",
        );
        assert_ne!(other, "agile_agnesi");
        // Every candidate taken: numbered names still end the search.
        let numbered = generate(|| 0x1234_0000, |name| !name.chars().any(|c| c.is_ascii_digit()));
        assert!(numbered.ends_with("4660"));
    }

    #[test]
    fn docker_name_rule() {
        assert!(is_valid("web-1.a_b"));
        for bad in ["", "-x", "a/b", "a b", "../x", "é"] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
