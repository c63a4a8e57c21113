//! Reading a received message into a tree of CAP elements, safely: a document type
//! declaration is refused outright (no DTD, so no entity declarations and no entity expansion,
//! "billion laughs" or external entities); only XML's five predefined entities and character
//! references are read. Every element must be in the CAP 1.2 namespace (an XML signature from
//! the xmldsig namespace may close the alert and is skipped). Each element keeps its path and
//! line, so the schema checks of [`super::cap_in`] can say where a message is wrong.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::cap::CAP_NS;

const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Why a message was refused: where (element path, line) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct CapError {
    /// Element path, e.g. `alert/info[1]/severity`.
    pub element: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// What is wrong (Chinese).
    pub message: String,
    /// Whether the XML itself is malformed or unsafe (400) rather than invalid CAP (422).
    pub malformed: bool,
}

impl CapError {
    pub(super) fn xml(line: Option<u64>, element: &str, message: impl Into<String>) -> CapError {
        CapError { element: element.to_string(), line, message: message.into(), malformed: true }
    }

    pub(super) fn cap(node: &Node, message: impl Into<String>) -> CapError {
        CapError { element: node.path.clone(), line: Some(node.line), message: message.into(), malformed: false }
    }
}

/// An element of the message: name, text, children, where it is.
#[derive(Debug, Clone)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Path from the root, with 1-based positions of repeated elements.
    pub path: String,
    /// 1-based line of its start tag.
    pub line: u64,
    /// Text content (trimmed).
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Node>,
}

impl Node {
    /// The children named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child named `name`.
    pub fn first(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.first(name).map(|n| n.text.as_str())
    }
}

fn line_at(xml: &str, pos: u64) -> u64 {
    let pos = (pos as usize).min(xml.len());
    xml.as_bytes()[..pos].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

/// Parses the document into a tree of CAP elements, refusing DTDs, undeclared entities and
/// elements outside the CAP namespace.
pub fn parse(xml: &str) -> Result<Node, CapError> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let pos = reader.buffer_position();
        let read = reader
            .read_resolved_event()
            .map(|(ns, ev)| {
                let ns = match ns {
                    ResolveResult::Bound(n) => Ok(String::from_utf8_lossy(n.as_ref()).to_string()),
                    ResolveResult::Unbound => Ok(String::new()),
                    ResolveResult::Unknown(p) => Err(String::from_utf8_lossy(&p).to_string()),
                };
                (ns, ev)
            })
            .map_err(|e| e.to_string());
        let (ns, event) = match read {
            Ok(v) => v,
            Err(e) => {
                let at = line_at(xml, reader.error_position());
                return Err(CapError::xml(Some(at), &current_path(&stack), format!("XML 格式错误（第 {at} 行）：{e}")));
            }
        };
        let line = line_at(xml, pos);
        match event {
            Event::DocType(_) => {
                return Err(CapError::xml(
                    Some(line),
                    "DOCTYPE",
                    "不接受含文档类型声明（DOCTYPE/DTD）的消息：DTD 可声明实体，可被用于实体扩展攻击；CAP 消息不需要 DTD",
                ));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                let ns_name = match &ns {
                    Ok(n) => n.clone(),
                    Err(p) => {
                        return Err(CapError::xml(
                            Some(line),
                            &name,
                            format!("元素 <{name}> 使用了未声明的命名空间前缀 {p}"),
                        ));
                    }
                };
                let empty = matches!(event, Event::Empty(_));
                if ns_name == XMLDSIG_NS && stack.len() == 1 {
                    if !empty {
                        let end = e.to_end().into_owned();
                        reader.read_to_end(end.name()).map_err(|err| {
                            CapError::xml(Some(line), "Signature", format!("XML 签名元素格式错误：{err}"))
                        })?;
                    }
                    continue;
                }
                if ns_name != CAP_NS {
                    let shown = if ns_name.is_empty() { "（无命名空间）".to_string() } else { ns_name };
                    return Err(CapError::xml(
                        Some(line),
                        &format!("{}{name}", prefix(&stack)),
                        format!("元素 <{name}> 的命名空间应为 {CAP_NS}（CAP 1.2），实际为 {shown}"),
                    ));
                }
                let path = match stack.last() {
                    None => name.clone(),
                    Some(parent) => {
                        let n = parent.children.iter().filter(|c| c.name == name).count() + 1;
                        format!("{}/{name}[{n}]", parent.path)
                    }
                };
                let node = Node { name, path, line, text: String::new(), children: vec![] };
                if empty {
                    attach(&mut stack, &mut root, node, line)?;
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| CapError::xml(Some(line), "", "多余的结束标签"))?;
                attach(&mut stack, &mut root, finish(node), line)?;
            }
            Event::Text(t) => {
                let text = t
                    .decode()
                    .map_err(|e| CapError::xml(Some(line), &current_path(&stack), format!("文本编码错误：{e}")))?;
                push_text(&mut stack, &text, line)?;
            }
            Event::CData(t) => {
                let text = t
                    .decode()
                    .map_err(|e| CapError::xml(Some(line), &current_path(&stack), format!("文本编码错误：{e}")))?;
                push_text(&mut stack, &text, line)?;
            }
            Event::GeneralRef(r) => {
                let text = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => return Err(CapError::xml(Some(line), &current_path(&stack), "无效的字符引用")),
                    }
                } else {
                    let name = r.decode().map(|n| n.to_string()).unwrap_or_default();
                    match name.as_str() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        _ => {
                            return Err(CapError::xml(
                                Some(line),
                                &current_path(&stack),
                                format!("未声明的实体 &{name};：只接受 XML 预定义实体和字符引用（拒绝实体扩展）"),
                            ));
                        }
                    }
                };
                push_text(&mut stack, &text, line)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(CapError::xml(None, &open.path, format!("元素 <{}> 没有结束标签", open.name)));
    }
    root.ok_or_else(|| CapError::xml(None, "", "消息为空：应为 CAP 1.2 的 <alert> 元素"))
}

fn prefix(stack: &[Node]) -> String {
    stack.last().map(|p| format!("{}/", p.path)).unwrap_or_default()
}

fn current_path(stack: &[Node]) -> String {
    stack.last().map(|p| p.path.clone()).unwrap_or_default()
}

fn finish(mut node: Node) -> Node {
    node.text = node.text.trim().to_string();
    node
}

fn push_text(stack: &mut [Node], text: &str, line: u64) -> Result<(), CapError> {
    match stack.last_mut() {
        Some(top) => {
            top.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(CapError::xml(Some(line), "", "根元素之外不能有文本")),
    }
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node, line: u64) -> Result<(), CapError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(node);
            Ok(())
        }
        None if root.is_none() => {
            *root = Some(node);
            Ok(())
        }
        None => Err(CapError::xml(Some(line), &node.path, "只能有一个根元素")),
    }
}
