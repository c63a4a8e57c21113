//! The character encoding of a received CAP message. Chinese feeds often send GBK, GB2312 or
//! GB18030 and say so in the XML declaration (`<?xml version="1.0" encoding="GBK"?>`); XML's
//! rules decide: a byte-order mark first, else the declaration's `encoding`, else UTF-8. The
//! text is decoded with encoding_rs (WHATWG labels: `gb2312` and `gbk` decode as GBK, `gb18030`
//! as GB18030) and refused, never patched, when its bytes are not valid in that encoding.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

/// Why a message's bytes could not be read as text (Chinese, for the 400 answer).
#[derive(Debug, Clone, PartialEq)]
pub struct CharsetError(pub String);

/// The message as text, and the encoding it came in.
pub fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, &'static Encoding), CharsetError> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        return text(encoding, &bytes[bom..]).map(|t| (t, encoding));
    }
    let encoding = match declared(bytes) {
        None => UTF_8,
        Some(label) => Encoding::for_label(label.as_bytes()).ok_or_else(|| {
            CharsetError(format!("XML 声明的编码 {label:?} 无法识别（可用 UTF-8、GBK、GB2312、GB18030）"))
        })?,
    };
    text(encoding, bytes).map(|t| (t, encoding))
}

fn text<'a>(encoding: &'static Encoding, bytes: &'a [u8]) -> Result<Cow<'a, str>, CharsetError> {
    encoding.decode_without_bom_handling_and_without_replacement(bytes).ok_or_else(|| {
        CharsetError(format!("消息按 {} 编码读取时含有无效字节（与 XML 声明的编码不符？）", encoding.name()))
    })
}

/// The `encoding` of the XML declaration, if the message starts with one. The declaration is
/// ASCII in every encoding a CAP feed uses, so it can be read before the text is decoded.
fn declared(bytes: &[u8]) -> Option<String> {
    let head = bytes.strip_prefix(b"<?xml")?;
    let end = head.windows(2).take(512).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].trim().to_string())
}

/// The message as it was received: `text` written back in the encoding its declaration names
/// (a GBK message is served as the GBK bytes it arrived as), with the charset to label it.
pub fn encode_as_declared(text: &str) -> (Cow<'_, [u8]>, &'static str) {
    let encoding = declared(text.as_bytes()).and_then(|l| Encoding::for_label(l.as_bytes())).unwrap_or(UTF_8);
    let encoding = encoding.output_encoding();
    let (bytes, _, _) = encoding.encode(text);
    (bytes, encoding.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_declared_chinese_encodings() {
        let text = "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<alert>暴雪橙色预警</alert>";
        for label in ["GBK", "gb2312", "GB18030"] {
            let xml = text.replace("GBK", label);
            let (bytes, _, bad) = Encoding::for_label(label.as_bytes()).unwrap().encode(&xml);
            assert!(!bad);
            assert_ne!(bytes.as_ref(), xml.as_bytes(), "{label} bytes differ from UTF-8");
            let (decoded, _) = decode(&bytes).unwrap();
            assert_eq!(decoded, xml, "{label}");
            let (again, charset) = encode_as_declared(&decoded);
            assert_eq!(again.as_ref(), bytes.as_ref(), "{label} served as received ({charset})");
        }
    }

    #[test]
    fn utf8_by_default_by_bom_and_refuses_bad_bytes() {
        assert_eq!(decode("<alert>预警</alert>".as_bytes()).unwrap().0, "<alert>预警</alert>");
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice("<?xml version='1.0' encoding='GBK'?><a>预警</a>".as_bytes());
        assert_eq!(decode(&bom).unwrap().1, UTF_8, "a byte-order mark outranks the declaration");
        // GBK bytes without a declaration are read as UTF-8, and refused.
        let (gbk, _, _) = encoding_rs::GBK.encode("<a>预警</a>");
        assert!(decode(&gbk).is_err());
        assert!(decode("<?xml version=\"1.0\" encoding=\"x-unknown\"?><a/>".as_bytes()).is_err());
        assert_eq!(declared(b"<?xml version=\"1.0\"?><a/>"), None);
    }
}
