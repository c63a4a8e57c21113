//! QR codes drawn on the server as SVG (no script, no image request): the calendar
//! subscription address on the 演练 page, for a phone's camera.

use qrcodegen::{QrCode, QrCodeEcc};

/// Quiet zone around the code, in modules (the standard asks for 4).
const BORDER: i32 = 4;

/// An SVG QR code of `text` with a Chinese accessible name, or None when the text is too long
/// for a QR code. The result is markup built here from numbers only; `label` is escaped.
pub fn svg(text: &str, label: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let n = qr.size();
    let side = n + 2 * BORDER;
    let mut path = String::with_capacity((n * n) as usize * 6);
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + BORDER, y + BORDER));
            }
        }
    }
    let label = label.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    Some(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" class="qr" role="img" aria-label="{label}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_a_square_svg_with_a_quiet_zone_and_an_escaped_name() {
        let s = svg("http://127.0.0.1:8080/api/v1/drills.ics?token=abc", "订阅<二维码>").unwrap();
        // Version 3 or 4 for a ~50-character address: 29 or 33 modules plus 8 of quiet zone.
        assert!(s.contains(r#"viewBox="0 0 37 37""#) || s.contains(r#"viewBox="0 0 41 41""#), "{s}");
        assert!(s.contains("订阅&lt;二维码&gt;"));
        // The three finder patterns: the top-left module of each is dark.
        assert!(s.contains("M4,4h1v1h-1z"));
        assert!(svg(&"x".repeat(5000), "too long").is_none());
    }
}
