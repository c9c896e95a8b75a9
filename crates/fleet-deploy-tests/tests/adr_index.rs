//! docs/adr/README.md must list every decision record, with the title the
//! record itself carries, so the index never silently falls behind.

use std::path::Path;

#[test]
fn every_adr_is_in_the_index_with_its_title() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/adr");
    let index = std::fs::read_to_string(dir.join("README.md")).expect("docs/adr/README.md");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/adr") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".md") || !name.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let number = &name[..4];
        let link = format!("[{number}]({name})");
        let row = index
            .lines()
            .find(|l| l.contains(&link))
            .unwrap_or_else(|| panic!("docs/adr/README.md has no row linking {link}"));
        if number != "0000" {
            let text = std::fs::read_to_string(&path).expect("ADR readable");
            let heading = text.lines().next().unwrap_or_default();
            // "# 0014. Title" or "# 0020 — Title": the words after the number.
            let title = heading
                .trim_start_matches('#')
                .trim()
                .trim_start_matches(number)
                .trim_start_matches(['.', ' ', '—', '-'])
                .trim();
            assert!(
                row.contains(title),
                "index row for {name} does not carry its title {title:?}: {row}"
            );
            assert!(
                text.contains("## Status") && text.contains("## Decision"),
                "{name} lacks the ADR sections"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} ADRs found: wrong directory?");
}
