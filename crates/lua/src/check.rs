//! Static checks for `tempest check`, without running user code: compile a chunk to find syntax
//! errors, and find the literal `require("name")` calls so undeclared modules can be reported.

use mlua::Lua;

/// A Lua syntax error: the line and Lua's own words, without the `chunk:line:` prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: u32,
    pub message: String,
}

/// Compiles `source` as the chunk `@{chunk_name}` without running it.
pub fn compile(chunk_name: &str, source: &str) -> Result<(), SyntaxError> {
    let lua = Lua::new();
    match lua.load(source).set_name(format!("@{chunk_name}")).into_function() {
        Ok(_) => Ok(()),
        Err(mlua::Error::SyntaxError { message, .. }) => Err(split_position(&message)),
        Err(other) => Err(SyntaxError { line: 0, message: other.to_string() }),
    }
}

/// Splits `name:12: message` (the name may itself be `[string "..."]`) at the first `:<digits>:`.
fn split_position(text: &str) -> SyntaxError {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(offset) = text[at..].find(':') {
        let start = at + offset + 1;
        let digits = bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && bytes.get(start + digits) == Some(&b':') {
            let line = text[start..start + digits].parse().unwrap_or(0);
            let message = text[start + digits + 1..].trim_start().to_owned();
            return SyntaxError { line, message };
        }
        at = start;
    }
    SyntaxError { line: 0, message: text.to_owned() }
}

/// A `require` of a literal module name, at the 1-based line and column of `require`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Require {
    pub name: String,
    pub line: u32,
    pub col: u32,
}

/// Finds `require("x")`, `require "x"`, `require 'x'` and `require [[x]]` (parenthesised or not),
/// skipping comments and string contents. Field calls (`obj.require "x"`, `obj:require "x"`) and
/// non-literal arguments are not reported.
pub fn literal_requires(source: &str) -> Vec<Require> {
    let chars: Vec<char> = source.chars().collect();
    let mut cursor = Cursor { src: &chars, pos: 0, line: 1, col: 1 };
    let mut found = Vec::new();
    // The two previous significant characters, to tell `a.require` from `a .. require`.
    let mut previous = [' ', ' '];
    while let Some(c) = cursor.peek(0) {
        if c.is_whitespace() {
            cursor.bump();
        } else if c == '-' && cursor.peek(1) == Some('-') {
            cursor.skip_comment();
        } else if c == '\'' || c == '"' || (c == '[' && cursor.long_bracket_level().is_some()) {
            cursor.string_literal();
            previous = [previous[1], '"'];
        } else if c.is_alphabetic() || c == '_' {
            let (line, col) = (cursor.line, cursor.col);
            let word = cursor.identifier();
            let field = previous[1] == ':' || (previous[1] == '.' && previous[0] != '.');
            if word == "require"
                && !field
                && let Some(name) = cursor.require_argument()
            {
                found.push(Require { name, line, col });
            }
            previous = [previous[1], 'a'];
        } else if c.is_ascii_digit() {
            while cursor.peek(0).is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                cursor.bump();
            }
            previous = [previous[1], '0'];
        } else {
            cursor.bump();
            previous = [previous[1], c];
        }
    }
    found
}

#[derive(Clone, Copy)]
struct Cursor<'a> {
    src: &'a [char],
    pos: usize,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.src.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn identifier(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek(0).filter(|c| c.is_alphanumeric() || *c == '_') {
            word.push(c);
            self.bump();
        }
        word
    }

    /// At `[`: the level of a long bracket opening here (`[[` is 0, `[==[` is 2).
    fn long_bracket_level(&self) -> Option<usize> {
        let equals = (1..).take_while(|&i| self.peek(i) == Some('=')).count();
        (self.peek(0) == Some('[') && self.peek(equals + 1) == Some('[')).then_some(equals)
    }

    /// Consumes a long bracket `[=*[ ... ]=*]` and returns its contents (first newline dropped).
    fn long_bracket(&mut self, level: usize) -> String {
        for _ in 0..level + 2 {
            self.bump();
        }
        if self.peek(0) == Some('\r') {
            self.bump();
        }
        if self.peek(0) == Some('\n') {
            self.bump();
        }
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            if c == ']' && (1..=level).all(|i| self.peek(i) == Some('=')) && self.peek(level + 1) == Some(']') {
                for _ in 0..level + 2 {
                    self.bump();
                }
                return text;
            }
            text.push(c);
            self.bump();
        }
        text
    }

    /// Consumes a quoted string and returns its contents (common escapes decoded).
    fn short_string(&mut self) -> String {
        let quote = self.bump();
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            match c {
                '\n' => break,
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some(other) => text.push(other),
                        None => break,
                    }
                }
                c if Some(c) == quote => {
                    self.bump();
                    break;
                }
                c => {
                    text.push(c);
                    self.bump();
                }
            }
        }
        text
    }

    /// Consumes a string literal of any form if one starts here.
    fn string_literal(&mut self) -> Option<String> {
        match self.peek(0)? {
            '\'' | '"' => Some(self.short_string()),
            '[' => self.long_bracket_level().map(|level| self.long_bracket(level)),
            _ => None,
        }
    }

    fn skip_comment(&mut self) {
        self.bump();
        self.bump();
        if let Some(level) = self.long_bracket_level() {
            self.long_bracket(level);
            return;
        }
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    fn skip_trivia(&mut self) {
        loop {
            match self.peek(0) {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('-') if self.peek(1) == Some('-') => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// Right after `require`: the literal module name it is called with, without consuming input.
    fn require_argument(&self) -> Option<String> {
        let mut ahead = *self;
        ahead.skip_trivia();
        if ahead.peek(0) == Some('(') {
            ahead.bump();
            ahead.skip_trivia();
            let name = ahead.string_literal()?;
            ahead.skip_trivia();
            return (ahead.peek(0) == Some(')')).then_some(name);
        }
        ahead.string_literal()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<(String, u32, u32)> {
        literal_requires(source).into_iter().map(|r| (r.name, r.line, r.col)).collect()
    }

    fn n(name: &str, line: u32, col: u32) -> (String, u32, u32) {
        (name.to_owned(), line, col)
    }

    #[test]
    fn compiles_valid_code() {
        assert_eq!(compile("wf.lua", "local x = 1\nreturn function() return x end"), Ok(()));
    }

    #[test]
    fn syntax_errors_are_cleaned() {
        let err = compile("app/wf.lua", "local function f()\n  return 1\n\n").unwrap_err();
        assert_eq!(err.line, 4);
        assert_eq!(err.message, "'end' expected (to close 'function' at line 1) near <eof>");
        let err = compile("x.lua", "x = = 2").unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (1, "unexpected symbol near '='"));
        let err = split_position("[string \"a:b\"]:7: oops: more");
        assert_eq!((err.line, err.message.as_str()), (7, "oops: more"));
    }

    #[test]
    fn finds_each_literal_form() {
        let source = "local a = require(\"json\")\nlocal b = require 'time'\nlocal c = require [[uuid]]\n\
                      local d = require [==[yaml]==]\nlocal e = require ( 'hash' )\nlocal f=require\"ctx\"";
        assert_eq!(
            names(source),
            vec![
                n("json", 1, 11),
                n("time", 2, 11),
                n("uuid", 3, 11),
                n("yaml", 4, 11),
                n("hash", 5, 11),
                n("ctx", 6, 9)
            ]
        );
    }

    #[test]
    fn skips_comments_and_strings() {
        let source = "-- require('a')\n--[[ require('b')\n]] --[==[ require('c') ]] still ]==]\n\
                      local s = \"require('d')\" local t = 'it''s' local u = [[require('e')]]\n\
                      local x = require('real') -- trailing";
        assert_eq!(names(source), vec![n("real", 5, 11)]);
        assert_eq!(names("local s = \"a \\\" require('x')\""), vec![]);
    }

    #[test]
    fn ignores_non_literal_and_field_calls() {
        assert_eq!(names("require(name)"), vec![]);
        assert_eq!(names("require('a' .. b)"), vec![]);
        assert_eq!(names("obj.require('a') obj:require 'b' local r = require"), vec![]);
        assert_eq!(names("local requirex = 1 myrequire('z')"), vec![]);
        assert_eq!(names("x = 'p' .. require('concat')"), vec![n("concat", 1, 12)]);
        assert_eq!(names("require --[[ why ]] (\n  'spaced' -- c\n)"), vec![n("spaced", 1, 1)]);
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(names("local é = 1; require 'm'"), vec![n("m", 1, 14)]);
        assert_eq!(names("\r\n  require'w'"), vec![n("w", 2, 3)]);
    }
}
