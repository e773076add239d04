//! The one CSV dialect of a CKA matrix, written by `gmnscope cka --csv`, the CKA explorer's
//! export and the study, and read by every reader (the study view, tests): RFC 4180 (a field
//! holding a comma, quote or line break is quoted, quotes doubled), header `layer,<column layer
//! names>`, then one line per row layer `name,v,...`, an undefined entry an empty field, values
//! in Rust's shortest round-trip form (reading gives back the same `f64`).

use std::io::Write;

/// A CKA matrix read back: row names, column names, values (`None` = undefined).
pub type MatrixTable = (Vec<String>, Vec<String>, Vec<Vec<Option<f64>>>);

/// `s` as one CSV field.
pub fn field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}

/// Writes the header line.
pub fn write_header(out: &mut impl Write, cols: &[String]) -> std::io::Result<()> {
    out.write_all(b"layer")?;
    for c in cols {
        write!(out, ",{}", field(c))?;
    }
    out.write_all(b"\n")
}

/// Writes one row line (streamed: a big matrix never sits in memory as text).
pub fn write_row(
    out: &mut impl Write,
    name: &str,
    values: impl IntoIterator<Item = Option<f64>>,
) -> std::io::Result<()> {
    out.write_all(field(name).as_bytes())?;
    for v in values {
        match v {
            Some(v) => write!(out, ",{v}")?,
            None => out.write_all(b",")?,
        }
    }
    out.write_all(b"\n")
}

/// The whole matrix as CSV text.
pub fn to_string(rows: &[String], cols: &[String], value: impl Fn(usize, usize) -> Option<f64>) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_header(&mut out, cols);
    for (i, r) in rows.iter().enumerate() {
        let _ = write_row(&mut out, r, (0..cols.len()).map(|j| value(i, j)));
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Parses a matrix in this dialect. Also accepts an empty first header field (exports of
/// gmnscope 0.1's CKA explorer). Errors name the line.
pub fn parse(text: &str) -> Result<MatrixTable, String> {
    let table = crate::data::csv::parse(text)?;
    let mut header = table.header.into_iter();
    match header.next().as_deref().map(str::trim) {
        Some("layer" | "") => {}
        _ => return Err("line 1: expected a header starting with 'layer'".into()),
    }
    let cols: Vec<String> = header.collect();
    if cols.is_empty() {
        return Err("line 1: no column layers".into());
    }
    let (mut rows, mut values) = (Vec::new(), Vec::new());
    for (i, record) in table.rows.into_iter().enumerate() {
        let mut fields = record.into_iter();
        let name = fields.next().unwrap_or_default();
        let row = fields
            .map(|f| match f.trim() {
                "" => Ok(None),
                t => match t.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(Some(v)),
                    _ => Err(format!("row {}: '{}' is not a finite number", i + 1, crate::text::shown(t))),
                },
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(name);
        values.push(row);
    }
    if rows.is_empty() {
        return Err("no rows".into());
    }
    Ok((rows, cols, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_commas_quotes_and_breaks_round_trip_with_exact_values() {
        let rows = vec!["a,1".to_string(), "say \"hi\"".to_string(), "two\nlines".to_string()];
        let cols = vec!["b".to_string(), "c,\"d\"".to_string()];
        let value = |i: usize, j: usize| if i == 1 && j == 0 { None } else { Some(0.1 + i as f64 / 3.0 - j as f64) };
        let text = to_string(&rows, &cols, value);
        let (r, c, v) = parse(&text).unwrap();
        assert_eq!((r, c), (rows, cols));
        for (i, row) in v.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                assert_eq!(*x, value(i, j));
            }
        }
    }

    #[test]
    fn bad_tables_name_the_problem() {
        assert!(parse("").is_err());
        assert!(parse("x,a\nr,1\n").unwrap_err().contains("header"));
        assert!(parse("layer,a,b\nr,1\n").unwrap_err().contains("line 2"));
        assert!(parse("layer,a\nr,nan\n").unwrap_err().contains("finite"));
        assert!(parse("layer,a\n").unwrap_err().contains("no rows"));
    }
}
