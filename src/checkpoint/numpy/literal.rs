//! A small, tolerant parser for the Python literal that forms an NPY header, e.g.
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
//!
//! Owns: tokenising strings, ints, booleans, `None`, tuples, lists and dicts. It accepts what
//! numpy (and Python 2 era numpy, with `3L` longs) writes; anything else is an error string.
//! Nesting is bounded so a hostile header cannot exhaust the stack.

/// A parsed Python literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

impl Literal {
    /// The value stored under string key `key` when `self` is a dict.
    pub fn get(&self, key: &str) -> Option<&Literal> {
        match self {
            Literal::Dict(entries) => {
                entries.iter().find(|(k, _)| matches!(k, Literal::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// Deeper nesting than this is refused (real headers nest at most a few levels, in structured
/// dtype descriptions).
const MAX_DEPTH: usize = 32;

/// Parses one literal; trailing whitespace is allowed, anything else after it is an error.
pub fn parse(text: &str) -> Result<Literal, String> {
    let mut parser = Parser { bytes: text.as_bytes(), pos: 0 };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(format!("unexpected text after the header dict at byte {}", parser.pos));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Literal, String> {
        if depth > MAX_DEPTH {
            return Err("header literal is nested too deeply".into());
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.dict(depth),
            Some(b'(') => self.sequence(b')', depth).map(Literal::Tuple),
            Some(b'[') => self.sequence(b']', depth).map(Literal::List),
            Some(quote @ (b'\'' | b'"')) => self.string(quote).map(Literal::Str),
            Some(b'-' | b'+' | b'0'..=b'9') => self.int(),
            Some(b) if b.is_ascii_alphabetic() => self.word(),
            Some(b) => Err(format!("unexpected character '{}' at byte {}", b.escape_ascii(), self.pos)),
            None => Err("header literal ends early".into()),
        }
    }

    /// Items up to `close`, comma separated, trailing comma allowed (`(3,)` is a 1-tuple).
    fn sequence(&mut self, close: u8, depth: usize) -> Result<Vec<Literal>, String> {
        self.pos += 1; // opening bracket
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b) if b == close => {}
                _ => return Err(format!("expected ',' or '{}' at byte {}", close as char, self.pos)),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Literal, String> {
        self.pos += 1; // '{'
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Literal::Dict(entries));
            }
            let key = self.value(depth + 1)?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(format!("expected ':' at byte {}", self.pos));
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
    }

    fn string(&mut self, quote: u8) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string in header".into()),
                Some(b) if b == quote => {
                    self.pos += 1;
                    return String::from_utf8(out).map_err(|_| "header string is not UTF-8".to_string());
                }
                Some(b'\\') => {
                    // Only the escapes a repr of a dtype name can contain: keep the next byte.
                    self.pos += 1;
                    out.push(self.peek().ok_or("unterminated string in header")?);
                    self.pos += 1;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Literal, String> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default();
        let value = text
            .parse::<i64>()
            .map_err(|_| format!("integer '{}' in header is out of range", crate::text::shown(text)))?;
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1; // Python 2 long suffix
        }
        Ok(Literal::Int(value))
    }

    fn word(&mut self) -> Result<Literal, String> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.pos += 1;
        }
        match &self.bytes[start..self.pos] {
            b"True" => Ok(Literal::Bool(true)),
            b"False" => Ok(Literal::Bool(false)),
            b"None" => Ok(Literal::None),
            other => Err(format!("unexpected name '{}' in header", other.escape_ascii())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let h = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }      \n").expect("valid");
        assert_eq!(h.get("descr"), Some(&Literal::Str("<f4".into())));
        assert_eq!(h.get("fortran_order"), Some(&Literal::Bool(false)));
        assert_eq!(h.get("shape"), Some(&Literal::Tuple(vec![Literal::Int(3), Literal::Int(4)])));
        let one = parse("{\"shape\": (7,), \"descr\": [('x', '<f4')]}").expect("valid");
        assert_eq!(one.get("shape"), Some(&Literal::Tuple(vec![Literal::Int(7)])));
        assert!(matches!(one.get("descr"), Some(Literal::List(_))));
        assert_eq!(parse("(3L, 4L)"), Ok(Literal::Tuple(vec![Literal::Int(3), Literal::Int(4)])));
        assert_eq!(parse("()"), Ok(Literal::Tuple(vec![])));
    }

    #[test]
    fn rejects_malformed_literals() {
        for bad in [
            "{'a': 1",
            "{'a' 1}",
            "{'a': 'unterminated}",
            "(1 2)",
            "{'a': 99999999999999999999999}",
            "{'a': exec}",
            "{} trailing",
            "",
            "@",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        let deep = "(".repeat(10_000);
        assert!(parse(&deep).expect_err("too deep").contains("deep"));
    }
}
