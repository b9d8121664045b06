//! The predixy file syntax, without meaning: lines of words into a tree of directives.
//!
//! - `Key value ...` is a directive; it ends at the end of the line, `{` or `}`.
//! - `Key [args] { ... }` is a directive with a block; blocks nest.
//! - `+ value` at the start of a statement is a list item.
//! - `#` outside double quotes starts a comment to the end of the line.
//! - `"..."` is one word that may hold spaces, `#`, `{` and `}`; inside it `\"` is a quote
//!   and `\\` a backslash, any other backslash is kept as is.

use crate::config::ConfigProblem;

/// Blocks deeper than this are refused (predixy files nest three deep at most).
const MAX_DEPTH: usize = 16;

/// One statement of the file.
#[derive(Debug)]
pub(super) enum Node {
    /// `Key args...` with an optional `{ ... }` block.
    Directive(Directive),
    /// `+ value ...`: the values after the `+`.
    Item { line: usize, values: Vec<String> },
}

/// `Key args... [{ block }]`.
#[derive(Debug)]
pub(super) struct Directive {
    /// Line of the directive's name.
    pub line: usize,
    pub name: String,
    pub args: Vec<String>,
    /// The statements inside `{ ... }`, or `None` when the directive has no block.
    pub block: Option<Vec<Node>>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word { text: String, quoted: bool },
    Open,
    Close,
    Plus,
    EndOfLine,
}

#[derive(Debug)]
struct Token {
    line: usize,
    tok: Tok,
}

/// Parses `text` into top-level statements; syntax problems go to `problems`, and as much
/// of the file as can be understood is still returned.
pub(super) fn parse_tree(text: &str, problems: &mut Vec<ConfigProblem>) -> Vec<Node> {
    let tokens = tokenize(text, problems);
    let mut builder = TreeBuilder::new();
    for token in tokens {
        if !builder.push(token, problems) {
            break;
        }
    }
    builder.finish(problems)
}

fn tokenize(text: &str, problems: &mut Vec<ConfigProblem>) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut at_statement_start = true;
    while let Some(c) = chars.next() {
        let tok = match c {
            '\n' => Tok::EndOfLine,
            '#' => {
                while chars.next_if(|c| *c != '\n').is_some() {}
                continue;
            }
            // predixy separates words by space and tab only: a no-break space is part of a
            // word (of a password, say), not a separator.
            c if is_blank(c) => continue,
            '{' => Tok::Open,
            '}' => Tok::Close,
            '+' if at_statement_start => Tok::Plus,
            '"' => quoted(&mut chars, line, problems),
            c => bare(c, &mut chars),
        };
        at_statement_start = matches!(tok, Tok::EndOfLine | Tok::Open | Tok::Close);
        tokens.push(Token { line, tok });
        if c == '\n' {
            line += 1;
        }
    }
    tokens
}

/// Space, tab and carriage return (a CRLF file's line ends): the characters between words.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// A quoted word after its opening `"`; stops before a newline if the quote is unclosed.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    line: usize,
    problems: &mut Vec<ConfigProblem>,
) -> Tok {
    let mut text = String::new();
    loop {
        match chars.next_if(|c| *c != '\n') {
            Some('"') => break,
            Some('\\') => match chars.next_if(|c| *c == '"' || *c == '\\') {
                Some(escaped) => text.push(escaped),
                None => {
                    // predixy drops such a backslash and reads the rest differently (a
                    // later `"` no longer closes the string): refused rather than guessed.
                    problems.push(ConfigProblem::new(
                        line,
                        "a `\\` inside quotes must be followed by `\"` or `\\` (write `\\\\` \
                         for a backslash)",
                    ));
                    text.push('\\');
                }
            },
            Some(c) => text.push(c),
            None => {
                problems.push(ConfigProblem::new(
                    line,
                    "unterminated quoted string (expected a closing \" on the same line)",
                ));
                break;
            }
        }
    }
    Tok::Word { text, quoted: true }
}

/// An unquoted word starting with `first`; ends at whitespace, `#`, `"`, `{` or `}`.
fn bare(first: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Tok {
    let mut text = String::from(first);
    while let Some(c) =
        chars.next_if(|c| !(is_blank(*c) || matches!(c, '\n' | '#' | '"' | '{' | '}')))
    {
        text.push(c);
    }
    Tok::Word {
        text,
        quoted: false,
    }
}

/// A block being filled: the directive that opened it and the statements so far.
struct Frame {
    opener: Option<Directive>,
    nodes: Vec<Node>,
}

/// Words of the statement being read.
#[derive(Default)]
struct Pending {
    line: usize,
    is_item: bool,
    words: Vec<(String, bool)>,
}

struct TreeBuilder {
    stack: Vec<Frame>,
    pending: Pending,
}

impl TreeBuilder {
    fn new() -> TreeBuilder {
        TreeBuilder {
            stack: vec![Frame {
                opener: None,
                nodes: Vec::new(),
            }],
            pending: Pending::default(),
        }
    }

    /// Takes one token; false when parsing must stop (nesting too deep).
    fn push(&mut self, token: Token, problems: &mut Vec<ConfigProblem>) -> bool {
        match token.tok {
            Tok::Word { text, quoted } => {
                if self.pending.words.is_empty() && !self.pending.is_item {
                    self.pending.line = token.line;
                }
                self.pending.words.push((text, quoted));
            }
            Tok::Plus => {
                self.pending.line = token.line;
                self.pending.is_item = true;
            }
            Tok::EndOfLine => self.flush(problems),
            Tok::Close => {
                self.flush(problems);
                self.close(token.line, problems);
            }
            Tok::Open => return self.open(token.line, problems),
        }
        true
    }

    /// Ends the pending statement, if any, as a directive without block or an item.
    fn flush(&mut self, problems: &mut Vec<ConfigProblem>) {
        let pending = std::mem::take(&mut self.pending);
        let node = if pending.is_item {
            Some(Node::Item {
                line: pending.line,
                values: pending.words.into_iter().map(|(w, _)| w).collect(),
            })
        } else {
            directive(pending, problems).map(Node::Directive)
        };
        if let (Some(node), Some(frame)) = (node, self.stack.last_mut()) {
            frame.nodes.push(node);
        }
    }

    fn open(&mut self, line: usize, problems: &mut Vec<ConfigProblem>) -> bool {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_item {
            problems.push(ConfigProblem::new(
                line,
                "a `+` list item cannot open a block (expected `+ value` alone on its line)",
            ));
        } else if pending.words.is_empty() {
            problems.push(ConfigProblem::new(
                line,
                "`{` without a directive name (expected `Name [value] {`)",
            ));
        }
        let opener = if pending.is_item {
            None
        } else {
            directive(pending, problems)
        };
        if self.stack.len() > MAX_DEPTH {
            problems.push(ConfigProblem::new(
                line,
                format!("blocks nested deeper than {MAX_DEPTH} levels (expected at most 3)"),
            ));
            return false;
        }
        self.stack.push(Frame {
            opener,
            nodes: Vec::new(),
        });
        true
    }

    fn close(&mut self, line: usize, problems: &mut Vec<ConfigProblem>) {
        if self.stack.len() <= 1 {
            problems.push(ConfigProblem::new(
                line,
                "unexpected `}` (no block is open here)",
            ));
            return;
        }
        self.pop_frame();
    }

    /// Closes the innermost block and attaches it to its directive in the parent block.
    fn pop_frame(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let Some(mut opener) = frame.opener else {
            return;
        };
        opener.block = Some(frame.nodes);
        if let Some(parent) = self.stack.last_mut() {
            parent.nodes.push(Node::Directive(opener));
        }
    }

    fn finish(mut self, problems: &mut Vec<ConfigProblem>) -> Vec<Node> {
        self.flush(problems);
        while self.stack.len() > 1 {
            if let Some(Frame {
                opener: Some(d), ..
            }) = self.stack.last()
            {
                problems.push(ConfigProblem::new(
                    d.line,
                    format!("`{}` block is never closed (expected `}}`)", d.name),
                ));
            }
            self.pop_frame();
        }
        self.stack.pop().map(|f| f.nodes).unwrap_or_default()
    }
}

/// Turns the words of a statement into a directive; `None` when there are no words.
fn directive(pending: Pending, problems: &mut Vec<ConfigProblem>) -> Option<Directive> {
    let mut words = pending.words.into_iter();
    let (name, quoted) = words.next()?;
    if quoted {
        problems.push(ConfigProblem::new(
            pending.line,
            format!("quoted directive name \"{name}\" (expected an unquoted name like Bind)"),
        ));
    }
    Some(Directive {
        line: pending.line,
        name,
        args: words.map(|(w, _)| w).collect(),
        block: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> (Vec<Node>, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let nodes = parse_tree(text, &mut problems);
        (nodes, problems)
    }

    fn directive_at(nodes: &[Node], i: usize) -> &Directive {
        match &nodes[i] {
            Node::Directive(d) => d,
            Node::Item { .. } => panic!("expected a directive at {i}"),
        }
    }

    #[test]
    fn quotes_comments_and_blocks() {
        let text = "Bind 0.0.0.0:7617 # comment\nAuth \"#a {pw}#\" {\n  Mode admin\n}\n";
        let (nodes, problems) = tree(text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(nodes.len(), 2);
        let bind = directive_at(&nodes, 0);
        assert_eq!(
            (bind.line, bind.args.as_slice()),
            (1, &["0.0.0.0:7617".to_string()][..])
        );
        let auth = directive_at(&nodes, 1);
        assert_eq!(auth.args, vec!["#a {pw}#".to_string()]);
        let block = auth.block.as_ref().expect("block");
        assert_eq!(directive_at(block, 0).line, 3);
    }

    #[test]
    fn inline_items_and_escapes() {
        let (nodes, problems) = tree("Allow { + 10.0.0.0/8 }\nX \"a\\\"b\\\\c\"");
        assert!(problems.is_empty(), "{problems:?}");
        let allow = directive_at(&nodes, 0);
        match &allow.block.as_ref().expect("block")[0] {
            Node::Item { line, values } => {
                assert_eq!(
                    (*line, values.as_slice()),
                    (1, &["10.0.0.0/8".to_string()][..])
                )
            }
            Node::Directive(_) => panic!("expected an item"),
        }
        assert_eq!(directive_at(&nodes, 1).args, vec!["a\"b\\c".to_string()]);
        // predixy would read `"p\w"` as something else entirely: refused.
        let (_, problems) = tree("X \"p\\w\"\n");
        assert!(
            problems[0].message.contains("must be followed by"),
            "{problems:?}"
        );
        // Only space and tab separate words: a no-break space belongs to the word.
        let (nodes, problems) = tree("Auth abc\u{a0} {\n}\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(directive_at(&nodes, 0).args, vec!["abc\u{a0}".to_string()]);
    }

    #[test]
    fn syntax_problems_have_lines() {
        let (_, p) = tree("A {\n}\n}\n");
        assert_eq!(
            p,
            vec![ConfigProblem::new(
                3,
                "unexpected `}` (no block is open here)"
            )]
        );
        let (_, p) = tree("A {\nB {\n");
        assert_eq!(p.iter().map(|p| p.line).collect::<Vec<_>>(), vec![2, 1]);
        let (_, p) = tree("\n\nA \"open\n");
        assert_eq!(p[0].line, 3);
        let (_, p) = tree("\n{\n}");
        assert_eq!(p[0].line, 2);
        let (_, p) = tree("+ a {\n}");
        assert_eq!(p[0].line, 1);
        let (_, p) = tree(&"A {\n".repeat(100_000));
        assert_eq!(p.len(), 1 + MAX_DEPTH);
        assert_eq!(p[0].line, MAX_DEPTH + 1);
    }
}
