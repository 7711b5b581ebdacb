//! Server configuration: a small parser for HCL version 1, the dialect Vault's configuration
//! files use (several attributes may share a line, `tls_disable = 1`, `#` and `//` comments).
//! HCL2 parsers reject such files, so this one keeps Vault users' files working unchanged.
//! Pure; every node records the byte offset where it starts, for error messages.

/// A parsed body: attributes and blocks in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Attr(Attr),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub key: String,
    pub value: Value,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub ident: String,
    pub labels: Vec<String>,
    pub body: Body,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    /// The literal text of a number.
    Number(String),
    Bool(bool),
    List(Vec<Value>),
    Object(Body),
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Number(_) => "a number",
            Self::Bool(_) => "a boolean",
            Self::List(_) => "a list",
            Self::Object(_) => "an object",
        }
    }
}

/// A syntax error at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Number(String),
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Equals,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Self::Ident(s) => format!("identifier {s:?}"),
            Self::Str(s) => format!("string {s:?}"),
            Self::Number(n) => format!("number {n}"),
            Self::LBrace => "'{'".into(),
            Self::RBrace => "'}'".into(),
            Self::LBracket => "'['".into(),
            Self::RBracket => "']'".into(),
            Self::Equals => "'='".into(),
            Self::Comma => "','".into(),
            Self::Eof => "end of file".into(),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            pos,
            message: message.into(),
        })
    }

    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.bytes.get(self.pos) {
                Some(b) if b.is_ascii_whitespace() => self.pos += 1,
                Some(b'#') => self.skip_line(),
                Some(b'/') if self.bytes.get(self.pos + 1) == Some(&b'/') => self.skip_line(),
                Some(b'/') if self.bytes.get(self.pos + 1) == Some(&b'*') => {
                    let start = self.pos;
                    match self.src[self.pos + 2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => return self.err(start, "unterminated /* comment"),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.bytes.get(self.pos) {
            if *b == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), SyntaxError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(&b) = self.bytes.get(self.pos) else {
            return Ok((Tok::Eof, start));
        };
        let single = match b {
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b'=' => Some(Tok::Equals),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return Ok((t, start));
        }
        match b {
            b'"' => self.string(start).map(|s| (Tok::Str(s), start)),
            b'<' if self.src[start..].starts_with("<<") => {
                self.heredoc(start).map(|s| (Tok::Str(s), start))
            }
            b'-' | b'0'..=b'9' => {
                self.pos += 1;
                while let Some(c) = self.bytes.get(self.pos) {
                    if c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-' | b'x') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok((Tok::Number(self.src[start..self.pos].to_owned()), start))
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while let Some(c) = self.bytes.get(self.pos) {
                    if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok((Tok::Ident(self.src[start..self.pos].to_owned()), start))
            }
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                self.err(start, format!("unexpected character {ch:?}"))
            }
        }
    }

    fn string(&mut self, start: usize) -> Result<String, SyntaxError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.src[self.pos..];
            let Some(c) = rest.chars().next() else {
                return self.err(start, "unterminated string");
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\n' => {
                    return self.err(
                        start,
                        "unterminated string (newline before the closing quote)",
                    );
                }
                '\\' => {
                    let Some(e) = self.src[self.pos..].chars().next() else {
                        return self.err(start, "unterminated string");
                    };
                    self.pos += e.len_utf8();
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '"' => '"',
                        '\\' => '\\',
                        other => {
                            return self.err(self.pos - 2, format!("unknown escape \\{other}"));
                        }
                    });
                }
                c => out.push(c),
            }
        }
    }

    fn heredoc(&mut self, start: usize) -> Result<String, SyntaxError> {
        let after = &self.src[start + 2..];
        let after = after.strip_prefix('-').unwrap_or(after);
        let line_end = after.find('\n').unwrap_or(after.len());
        let marker = after[..line_end].trim();
        if marker.is_empty()
            || !marker
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return self.err(start, "heredoc needs a marker, as in <<EOF");
        }
        let body_start = self.src.len() - after.len() + line_end + 1;
        let mut out = String::new();
        let mut pos = body_start.min(self.src.len());
        for line in self.src[pos..].split_inclusive('\n') {
            pos += line.len();
            if line.trim() == marker {
                self.pos = pos;
                return Ok(out);
            }
            out.push_str(line);
        }
        self.err(start, format!("heredoc is missing its closing {marker}"))
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<(Tok, usize)>,
    depth: usize,
}

const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn peek(&mut self) -> Result<&(Tok, usize), SyntaxError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next()?);
        }
        Ok(self.peeked.as_ref().unwrap_or(&(Tok::Eof, 0)))
    }

    fn bump(&mut self) -> Result<(Tok, usize), SyntaxError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next(),
        }
    }

    fn body(&mut self, closing: bool) -> Result<Body, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let pos = self.lex.pos;
            return self.lex.err(pos, "nesting is too deep");
        }
        let mut items = Vec::new();
        loop {
            let (tok, pos) = self.bump()?;
            let key = match tok {
                Tok::RBrace if closing => break,
                Tok::Eof if !closing => break,
                Tok::Eof => return self.lex.err(pos, "missing '}' before the end of the file"),
                Tok::Comma => continue,
                Tok::Ident(s) | Tok::Str(s) => s,
                other => {
                    return self.lex.err(
                        pos,
                        format!("expected a setting name, found {}", other.describe()),
                    );
                }
            };
            let mut labels = Vec::new();
            loop {
                let (tok, tpos) = self.bump()?;
                match tok {
                    Tok::Equals if labels.is_empty() => {
                        let value = self.value()?;
                        items.push(Item::Attr(Attr { key, value, pos }));
                        break;
                    }
                    Tok::Str(l) => labels.push(l),
                    Tok::LBrace => {
                        let body = self.body(true)?;
                        items.push(Item::Block(Block {
                            ident: key,
                            labels,
                            body,
                            pos,
                        }));
                        break;
                    }
                    other => {
                        return self.lex.err(
                            tpos,
                            format!(
                                "after {key:?} expected '=', a quoted label or '{{', found {}",
                                other.describe()
                            ),
                        );
                    }
                }
            }
        }
        self.depth -= 1;
        Ok(Body { items })
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        let (tok, pos) = self.bump()?;
        match tok {
            Tok::Str(s) => Ok(Value::Str(s)),
            Tok::Number(n) => Ok(Value::Number(n)),
            Tok::Ident(i) if i == "true" => Ok(Value::Bool(true)),
            Tok::Ident(i) if i == "false" => Ok(Value::Bool(false)),
            Tok::LBrace => Ok(Value::Object(self.body(true)?)),
            Tok::LBracket => {
                let mut items = Vec::new();
                loop {
                    match self.peek()?.0 {
                        Tok::RBracket => {
                            self.bump()?;
                            return Ok(Value::List(items));
                        }
                        Tok::Comma => {
                            self.bump()?;
                        }
                        _ => items.push(self.value()?),
                    }
                }
            }
            Tok::Ident(i) => self.lex.err(
                pos,
                format!("unquoted value {i:?}; strings must be in double quotes"),
            ),
            other => self
                .lex
                .err(pos, format!("expected a value, found {}", other.describe())),
        }
    }
}

/// Parses a whole file.
pub fn parse(src: &str) -> Result<Body, SyntaxError> {
    let mut p = Parser {
        lex: Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        },
        peeked: None,
        depth: 0,
    };
    p.body(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_style_one_line_blocks_and_comments() {
        let b = parse(
            "# comment\nlistener \"tcp\" { address = \"127.0.0.1:8200\"  tls_disable = 1 } // c\n/* x */ ui = true\nlist = [\"a\", \"b\",]\nobj = { k = \"v\" }\n",
        )
        .expect("parse");
        assert_eq!(b.items.len(), 4);
        let Item::Block(l) = &b.items[0] else {
            panic!("block")
        };
        assert_eq!(
            (l.ident.as_str(), l.labels.as_slice()),
            ("listener", ["tcp".to_owned()].as_slice())
        );
        assert_eq!(l.body.items.len(), 2);
        let Item::Attr(a) = &l.body.items[1] else {
            panic!("attr")
        };
        assert_eq!(a.value, Value::Number("1".into()));
        let Item::Attr(list) = &b.items[2] else {
            panic!("attr")
        };
        assert_eq!(
            list.value,
            Value::List(vec![Value::Str("a".into()), Value::Str("b".into())])
        );
    }

    #[test]
    fn heredoc_and_escapes() {
        let b = parse("a = <<EOF\nline1\nline2\nEOF\nb = \"q\\\"x\"\n").expect("parse");
        let Item::Attr(a) = &b.items[0] else {
            panic!("attr")
        };
        assert_eq!(a.value, Value::Str("line1\nline2\n".into()));
        let Item::Attr(bb) = &b.items[1] else {
            panic!("attr")
        };
        assert_eq!(bb.value, Value::Str("q\"x".into()));
    }

    #[test]
    fn errors_have_positions_and_never_panic() {
        for bad in [
            "a = ",
            "a = \"x",
            "listener {",
            "a = b",
            "{",
            "a = [",
            "/* x",
            "a = <<EOF\nx",
            "é = 1",
            "a \"l\" = 1",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.pos <= bad.len(), "{bad:?}: {e:?}");
        }
        let deep = "a = ".to_owned() + &"{ b = ".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
