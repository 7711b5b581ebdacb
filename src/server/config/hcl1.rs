//! Server configuration: a small parser for HCL version 1, the dialect Vault's configuration
//! files use (several attributes may share a line, `tls_disable = 1`, `#` and `//` comments).
//! HCL2 parsers reject such files, so this one keeps Vault users' files working unchanged.
//! Pure; every node records the byte offset where it starts, for error messages.
//!
//! The input is untrusted (policies arrive over the API), so the parser bounds what it accepts:
//! at most [`MAX_LEN`] bytes, and at most [`MAX_DEPTH`] nested `{` and `[`. The recursive descent
//! therefore never goes deeper than `MAX_DEPTH` frames, whatever the text.

/// Deepest nesting of `{` (blocks and objects) and `[` (lists) accepted, counted together. Real
/// files nest a few levels (`listener "tcp" { telemetry { ... } }`; a JSON policy is four deep);
/// 64 keeps the recursion a small fraction of the smallest stack it runs on (a 2 MiB tokio
/// worker), in debug builds too, where frames are largest.
pub const MAX_DEPTH: usize = 64;
/// Largest accepted text, in bytes (4 MiB). A 20,000-path policy is about 1 MB; the limit
/// bounds the syntax tree, which takes several times the memory of the text.
pub const MAX_LEN: usize = 4 * 1024 * 1024;

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

/// The message for a `{` or `[` (`what`) past [`MAX_DEPTH`]: the cause and the fix.
pub fn too_deep(what: &str) -> String {
    format!(
        "{what} nests deeper than {MAX_DEPTH} levels of '{{' and '['; flatten the structure (real configs and policies nest a few levels)"
    )
}

/// The message for a text of `len` bytes, past [`MAX_LEN`]: the cause and the fix.
pub fn too_long(len: usize) -> String {
    format!(
        "the text is {len} bytes, more than the limit of {MAX_LEN} (4 MiB); split it into smaller files or policies"
    )
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

    /// Enters one level of `{` or `[` opened at `pos`, refusing to go past [`MAX_DEPTH`].
    fn open(&mut self, pos: usize, what: &str) -> Result<(), SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return self.lex.err(pos, too_deep(what));
        }
        self.depth += 1;
        Ok(())
    }

    /// A block body: `closing` when it ends at `}` (the file's top level ends at the end).
    fn body(&mut self, closing: bool) -> Result<Body, SyntaxError> {
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
                        self.open(tpos, "this block")?;
                        let body = self.body(true)?;
                        self.depth -= 1;
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
        Ok(Body { items })
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        let (tok, pos) = self.bump()?;
        match tok {
            Tok::Str(s) => Ok(Value::Str(s)),
            Tok::Number(n) => Ok(Value::Number(n)),
            Tok::Ident(i) if i == "true" => Ok(Value::Bool(true)),
            Tok::Ident(i) if i == "false" => Ok(Value::Bool(false)),
            Tok::LBrace => {
                self.open(pos, "this object")?;
                let body = self.body(true)?;
                self.depth -= 1;
                Ok(Value::Object(body))
            }
            Tok::LBracket => {
                self.open(pos, "this list")?;
                let mut items = Vec::new();
                loop {
                    match self.peek()?.0 {
                        Tok::RBracket => {
                            self.bump()?;
                            self.depth -= 1;
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

/// Parses a whole file of at most [`MAX_LEN`] bytes.
pub fn parse(src: &str) -> Result<Body, SyntaxError> {
    if src.len() > MAX_LEN {
        return Err(SyntaxError {
            pos: MAX_LEN,
            message: too_long(src.len()),
        });
    }
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
mod tests;
