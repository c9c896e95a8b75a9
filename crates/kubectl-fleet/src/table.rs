//! Tables laid out like kubectl's: upper-case headers, columns separated by
//! three spaces and padded to the widest cell, `<none>` for empty cells, no
//! trailing blanks.
//!
//! Colour is applied to a cell *after* its width was measured, so escape
//! codes never shift the columns; with [`Style::Plain`] no escape code is
//! written at all.

/// Written for a cell that has no value (kubectl's convention).
pub const NONE: &str = "<none>";

const GAP: &str = "   ";

/// Whether escape codes are written (decided once in [`crate::output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Colour,
}

/// The few colours the plugin uses: good, bad, in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Red,
    Yellow,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Yellow => "33",
        }
    }
}

/// One cell: its text and, optionally, the colour it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    colour: Option<Colour>,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            colour: None,
        }
    }

    pub fn coloured(text: impl Into<String>, colour: Colour) -> Self {
        Cell {
            text: text.into(),
            colour: Some(colour),
        }
    }

    /// `<none>` when `text` is absent or empty.
    pub fn or_none(text: Option<impl Into<String>>) -> Self {
        match text.map(Into::into) {
            Some(t) if !t.is_empty() => Cell::plain(t),
            Some(_) | None => Cell::plain(NONE),
        }
    }

    fn shown(&self) -> &str {
        if self.text.is_empty() {
            NONE
        } else {
            &self.text
        }
    }

    fn width(&self) -> usize {
        self.shown().chars().count()
    }

    /// The text in `style`, without padding.
    pub fn render(&self, style: Style) -> String {
        match (style, self.colour) {
            (Style::Colour, Some(c)) => format!("\x1b[{}m{}\x1b[0m", c.code(), self.shown()),
            (Style::Colour, None) | (Style::Plain, _) => self.shown().to_string(),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::plain(s)
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::plain(s)
    }
}

/// A table: headers plus rows of the same length.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Headers are shown upper case, as kubectl does.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_uppercase()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells read `<none>`, extra cells are dropped (a
    /// row always has exactly one cell per header).
    pub fn row(&mut self, cells: Vec<Cell>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), Cell::plain(""));
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every line ends with `\n`; the last column is not padded.
    pub fn render(&self, style: Style) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        let mut out = String::new();
        let header_cells: Vec<Cell> = self
            .headers
            .iter()
            .map(|h| Cell::plain(h.clone()))
            .collect();
        for row in std::iter::once(&header_cells).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                out.push_str(&cell.render(style));
                if i < last {
                    out.push_str(&" ".repeat(width - cell.width()));
                    out.push_str(GAP);
                }
            }
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned, for the summary above
/// `status`'s tables.
pub fn fields(pairs: &[(&str, Cell)], style: Style) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(&label);
        out.push_str(&" ".repeat(width - label.chars().count() + 1));
        out.push_str(&value.render(style));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_with_upper_case_headers_and_none() {
        let mut t = Table::new(&["name", "connected", "version"]);
        t.row(vec!["fleet-agent-0".into(), "true".into(), "0.1.0".into()]);
        t.row(vec![
            "a".into(),
            "false".into(),
            Cell::or_none(None::<String>),
        ]);
        assert_eq!(
            t.render(Style::Plain),
            "NAME            CONNECTED   VERSION\n\
             fleet-agent-0   true        0.1.0\n\
             a               false       <none>\n"
        );
    }

    #[test]
    fn colour_codes_do_not_shift_columns() {
        let mut t = Table::new(&["ready", "name"]);
        t.row(vec![Cell::coloured("True", Colour::Green), "nats".into()]);
        t.row(vec![Cell::coloured("False", Colour::Red), "agents".into()]);
        let coloured = t.render(Style::Colour);
        assert_eq!(
            coloured,
            "READY   NAME\n\x1b[32mTrue\x1b[0m    nats\n\x1b[31mFalse\x1b[0m   agents\n"
        );
        let plain = t.render(Style::Plain);
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert_eq!(plain, "READY   NAME\nTrue    nats\nFalse   agents\n");
    }

    #[test]
    fn short_rows_are_filled_with_none() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["x".into()]);
        assert_eq!(t.render(Style::Plain), "A   B\nx   <none>\n");
    }

    #[test]
    fn fields_align_values() {
        let out = fields(
            &[
                ("Stack", "ns/fleet".into()),
                ("Reconciling", "False".into()),
            ],
            Style::Plain,
        );
        assert_eq!(out, "Stack:       ns/fleet\nReconciling: False\n");
    }
}
