//! Quoting for the commands `explain` prints.

/// `word` as a shell reads it back: bare when no shell gives any of its
/// characters a meaning, else in single quotes.
pub(crate) fn word(word: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_-.,:/=+@%".contains(&b);
    // `!` alone is an argument (iptables' negation); only history expansion
    // of an interactive bash would look at a `!` followed by more.
    if word == "!" || (!word.is_empty() && word.bytes().all(plain)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(word(""), "''");
        assert_eq!(word("!"), "!");
        assert_eq!(word("!x"), "'!x'");
        assert_eq!(word("RELATED,ESTABLISHED"), "RELATED,ESTABLISHED");
        assert_eq!(word("minirun:n1:c+1"), "minirun:n1:c+1");
        assert_eq!(word("\"br0\""), "'\"br0\"'");
        assert_eq!(word("$x`y`"), "'$x`y`'");
    }
}
