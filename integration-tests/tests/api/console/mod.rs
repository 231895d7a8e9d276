//! The operator console over real HTTP (and, in `browser`, in a real browser).

mod browser;
mod pages;
mod session;

/// The value of the first hidden `csrf` field of a page.
fn csrf_in(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start =
        html.find(marker).unwrap_or_else(|| panic!("no csrf field in {html}")) + marker.len();
    let end = html[start..].find('"').expect("the field's value ends") + start;
    html[start..end].to_owned()
}
