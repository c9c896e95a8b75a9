//! Prints every CRD of the project as multi-document YAML.
//! Regenerate the committed copy with:
//! `cargo run -p fleet-crds --bin crdgen > charts/bootstrap/crds/fleetstack.yaml`

fn main() {
    match fleet_crds::crdgen::render_yaml() {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("crdgen: {e}");
            std::process::exit(1);
        }
    }
}
