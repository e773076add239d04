//! A small CSV reader for the zoo metadata files (`layout.csv`, `metrics.csv.gz`): RFC 4180
//! quoting (fields with commas such as `"(3, 3, 1, 16)"`, doubled quotes), `\n` or `\r\n` line
//! ends, a header row giving column names.

/// A parsed table: the header and the rows (each as long as the header).
#[derive(Debug)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Index of the first column whose name is one of `names`.
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.header.iter().position(|h| h.trim() == *n))
    }
}

/// Parses CSV text; a row with a different number of fields than the header is an error
/// (`line N has X fields, the header has Y`). Blank lines are skipped.
pub fn parse(text: &str) -> Result<Table, String> {
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for_each_record(text, |at, record| {
        match &header {
            None => header = Some(record),
            Some(h) if h.len() != record.len() => {
                return Err(format!("line {at} has {} fields, the header has {}", record.len(), h.len()));
            }
            Some(_) => rows.push(record),
        }
        Ok(())
    })?;
    let header = header.ok_or("the file is empty (no header row)")?;
    Ok(Table { header, rows })
}

/// Calls `f(line, fields)` for every record (the header included), without keeping them: big
/// metric files are streamed through this and only the needed columns are kept.
pub fn for_each_record(text: &str, mut f: impl FnMut(usize, Vec<String>) -> Result<(), String>) -> Result<(), String> {
    let mut field = String::new();
    let mut record: Vec<String> = Vec::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !(record.is_empty() && field.is_empty()) {
                    record.push(std::mem::take(&mut field));
                    f(record_line, std::mem::take(&mut record))?;
                }
                line += 1;
                record_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("line {record_line}: a quoted field is never closed"));
    }
    if !(record.is_empty() && field.is_empty()) {
        record.push(field);
        f(record_line, record)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_line_ends() {
        let t = parse(",varname,shape\r\n0,a/kernel:0,\"(3, 3, 1, 16)\"\n\n1,\"say \"\"hi\"\"\",()\n").unwrap();
        assert_eq!(t.header, ["", "varname", "shape"]);
        assert_eq!(t.rows, vec![vec!["0", "a/kernel:0", "(3, 3, 1, 16)"], vec!["1", "say \"hi\"", "()"]]);
        assert_eq!(t.column(&["start_idx", "shape"]), Some(2));
    }

    #[test]
    fn ragged_and_unclosed_rows_are_errors() {
        assert!(parse("a,b\n1\n").unwrap_err().contains("line 2 has 1 fields"));
        assert!(parse("a,b\n1,\"x\n").unwrap_err().contains("never closed"));
        assert!(parse("").is_err());
    }
}
