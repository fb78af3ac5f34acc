//! Just enough GraphQL to tell what a request would do: the operations of a
//! document, their type (query, mutation, subscription), their names and the
//! names of their root fields (`volumeDelete` in `mutation { volumeDelete(id: 1) }`).
//!
//! Fail closed: anything this reader does not understand is an error, and a
//! route with GraphQL rules refuses a request it cannot read.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    pub kind: OpKind,
    pub name: Option<String>,
    /// Root field names (aliases resolved to the field itself).
    pub root_fields: Vec<String>,
    /// The root selection holds a fragment (spread or inline), whose fields
    /// this reader does not resolve.
    pub opaque_root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Name(String),
    Punct(u8),
    Spread,
    /// Strings and numbers: values, never names.
    Value,
}

fn lex(doc: &str) -> Result<Vec<Tok>, &'static str> {
    let b = doc.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            0xEF if b[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => i += 3,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                loop {
                    if i >= b.len() {
                        return Err("unterminated block string");
                    }
                    if b[i..].starts_with(b"\\\"\"\"") {
                        i += 4;
                    } else if b[i..].starts_with(b"\"\"\"") {
                        i += 3;
                        break;
                    } else {
                        i += 1;
                    }
                }
                out.push(Tok::Value);
            }
            b'"' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') | Some(b'\r') => return Err("unterminated string"),
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push(Tok::Value);
            }
            b'.' if b[i..].starts_with(b"...") => {
                i += 3;
                out.push(Tok::Spread);
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"+-.".contains(&b[i])) {
                    i += 1;
                }
                out.push(Tok::Value);
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let s = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(Tok::Name(doc[s..i].to_string()));
            }
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b':' | b'=' | b'@' | b'$' | b'!' | b'&'
            | b'|' => {
                out.push(Tok::Punct(c));
                i += 1;
            }
            _ => return Err("unexpected character in GraphQL document"),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn punct(&self, c: u8) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }
    fn name(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Name(n)) => {
                let n = n.clone();
                self.i += 1;
                Some(n)
            }
            _ => None,
        }
    }
    /// Skips a balanced group starting at the current `open` token.
    fn skip_group(&mut self, open: u8, close: u8) -> Result<(), &'static str> {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Punct(c) if *c == open => depth += 1,
                Tok::Punct(c) if *c == close => {
                    depth = depth.checked_sub(1).ok_or("unbalanced GraphQL document")?;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        Err("unbalanced GraphQL document")
    }
    fn directives(&mut self) -> Result<(), &'static str> {
        while self.punct(b'@') {
            self.i += 1;
            self.name().ok_or("directive without a name")?;
            if self.punct(b'(') {
                self.skip_group(b'(', b')')?;
            }
        }
        Ok(())
    }
    /// The root selection set: `{ a b: c(x: 1) { … } ...F }`.
    fn root_selection(&mut self, op: &mut Operation) -> Result<(), &'static str> {
        if !self.punct(b'{') {
            return Err("expected a selection set");
        }
        self.i += 1;
        loop {
            match self.peek() {
                Some(Tok::Punct(b'}')) => {
                    self.i += 1;
                    return Ok(());
                }
                Some(Tok::Spread) => {
                    op.opaque_root = true;
                    self.i += 1;
                    // `...Name`, `...on Type { }` or `... @dir { }`
                    if self.name().as_deref() == Some("on") {
                        self.name().ok_or("inline fragment without a type")?;
                    }
                    self.directives()?;
                    if self.punct(b'{') {
                        self.skip_group(b'{', b'}')?;
                    }
                }
                Some(Tok::Name(_)) => {
                    let first = self.name().ok_or("expected a field")?;
                    let field = if self.punct(b':') {
                        self.i += 1;
                        self.name().ok_or("alias without a field")?
                    } else {
                        first
                    };
                    op.root_fields.push(field);
                    if self.punct(b'(') {
                        self.skip_group(b'(', b')')?;
                    }
                    self.directives()?;
                    if self.punct(b'{') {
                        self.skip_group(b'{', b'}')?;
                    }
                }
                _ => return Err("unexpected token in a selection set"),
            }
        }
    }
}

/// Every operation in `doc`. Fragment definitions are skipped; type-system
/// definitions (not executable) are an error.
pub(crate) fn operations(doc: &str) -> Result<Vec<Operation>, &'static str> {
    let mut p = Parser {
        toks: lex(doc)?,
        i: 0,
    };
    let mut ops = Vec::new();
    while let Some(t) = p.peek().cloned() {
        match t {
            Tok::Punct(b'{') => {
                let mut op = Operation {
                    kind: OpKind::Query,
                    name: None,
                    root_fields: Vec::new(),
                    opaque_root: false,
                };
                p.root_selection(&mut op)?;
                ops.push(op);
            }
            Tok::Name(n) if n == "query" || n == "mutation" || n == "subscription" => {
                p.i += 1;
                let kind = match n.as_str() {
                    "query" => OpKind::Query,
                    "mutation" => OpKind::Mutation,
                    _ => OpKind::Subscription,
                };
                let name = p.name();
                if p.punct(b'(') {
                    p.skip_group(b'(', b')')?;
                }
                p.directives()?;
                let mut op = Operation {
                    kind,
                    name,
                    root_fields: Vec::new(),
                    opaque_root: false,
                };
                p.root_selection(&mut op)?;
                ops.push(op);
            }
            Tok::Name(n) if n == "fragment" => {
                p.i += 1;
                p.name().ok_or("fragment without a name")?;
                if p.name().as_deref() != Some("on") {
                    return Err("fragment without a type condition");
                }
                p.name().ok_or("fragment without a type")?;
                p.directives()?;
                if !p.punct(b'{') {
                    return Err("fragment without a selection set");
                }
                p.skip_group(b'{', b'}')?;
            }
            _ => return Err("not an executable GraphQL document"),
        }
    }
    if ops.is_empty() {
        return Err("GraphQL document without an operation");
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_root_fields_are_found_through_aliases_and_arguments() {
        let ops = operations(
            r#"# a comment { mutation }
            mutation Cleanup($id: String!) @x(a: "}") {
              gone: volumeDelete(volumeId: $id, note: """ } mutation { """) { id }
              backupDelete(id: "x")
            }
            query { me { id } }"#,
        )
        .expect("parses");
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].kind, OpKind::Mutation);
        assert_eq!(ops[0].name.as_deref(), Some("Cleanup"));
        assert_eq!(ops[0].root_fields, ["volumeDelete", "backupDelete"]);
        assert_eq!(ops[1].kind, OpKind::Query);
        assert_eq!(ops[1].root_fields, ["me"]);
    }

    #[test]
    fn fragments_at_the_root_are_opaque_and_garbage_is_an_error() {
        let ops = operations("mutation { ...F } fragment F on Mutation { volumeDelete(id: 1) }")
            .expect("parses");
        assert!(ops[0].opaque_root);
        assert!(operations("type Query { a: Int }").is_err());
        assert!(operations("mutation { a(").is_err());
        assert!(operations("").is_err());
        assert!(operations("{ a ; }").is_err());
    }
}
