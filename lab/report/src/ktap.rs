//! KTAP version 1 (Documentation/dev-tools/ktap.rst): writer for a run, and
//! a parser for the same two-level subset.

use crate::error::{Error, Result};
use crate::model::{CaseReport, Outcome, RunReport};

const VERSION: &str = "KTAP version 1";
const INDENT: &str = "  ";

/// One parsed result: (suite, case, outcome).
pub type KtapResult = (String, String, Outcome);

/// Makes a KTAP test description: `#`, whitespace and control characters
/// become `_`; an empty name becomes `unnamed`.
pub fn sanitize_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| match c {
            '#' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect();
    if clean.is_empty() {
        "unnamed".to_string()
    } else {
        clean
    }
}

/// Renders the run as KTAP: one subtest block per suite. A suite without
/// cases is reported as `ok N suite # SKIP no cases`.
pub fn write(report: &RunReport) -> String {
    let mut out = format!("{VERSION}\n1..{}\n", report.suites.len());
    for (i, suite) in report.suites.iter().enumerate() {
        let name = sanitize_name(&suite.name);
        out.push_str(&format!("{INDENT}{VERSION}\n"));
        out.push_str(&format!("{INDENT}# Subtest: {name}\n"));
        out.push_str(&format!("{INDENT}1..{}\n", suite.cases.len()));
        for (j, case) in suite.cases.iter().enumerate() {
            write_case(&mut out, j + 1, case);
        }
        let result = result_word(suite.failed());
        let skip = if suite.cases.is_empty() {
            " # SKIP no cases"
        } else {
            ""
        };
        out.push_str(&format!("{result} {} {name}{skip}\n", i + 1));
    }
    out
}

fn write_case(out: &mut String, number: usize, case: &CaseReport) {
    let mut diag = |text: &str| {
        for line in text.split('\n') {
            let line = format!("{INDENT}# {}", line.trim_end_matches('\r'));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    };
    let directive = directive(case.outcome);
    if directive.is_none() {
        if let Some(reason) = &case.reason {
            diag(&format!("reason: {reason}"));
        }
    }
    for line in &case.diagnostics {
        diag(line);
    }
    for splat in &case.splats {
        diag(&format!("splat: {} at log line {}", splat.kind, splat.line));
        for line in &splat.excerpt {
            diag(line);
        }
    }
    let result = result_word(case.outcome.is_failure());
    let name = sanitize_name(&case.name);
    out.push_str(&format!("{INDENT}{result} {number} {name}"));
    if let Some(directive) = directive {
        out.push_str(" # ");
        out.push_str(directive);
        let text = match (&case.reason, case.outcome) {
            (Some(reason), _) => reason.as_str(),
            (None, Outcome::Xpass) => "unexpected pass",
            (None, _) => "",
        };
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() {
            out.push(' ');
            out.push_str(&text);
        }
    }
    out.push('\n');
}

fn result_word(failed: bool) -> &'static str {
    if failed {
        "not ok"
    } else {
        "ok"
    }
}

fn directive(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Pass | Outcome::Fail => None,
        Outcome::Skip => Some("SKIP"),
        Outcome::Xfail => Some("XFAIL"),
        Outcome::Timeout => Some("TIMEOUT"),
        Outcome::Error => Some("ERROR"),
        Outcome::Xpass => Some("XPASS"),
    }
}

/// Parses KTAP with one level of subtests (suites of cases). Text before the
/// first version line, unknown lines and deeper nesting are ignored. A
/// top-level test without case results is reported as `(name, name, outcome)`.
pub fn parse(text: &str) -> Result<Vec<KtapResult>> {
    let mut parser = Parser::default();
    for (i, raw) in text.lines().enumerate() {
        parser.line(i + 1, raw.trim_end_matches('\r').trim_end())?;
    }
    parser.finish()
}

#[derive(Default)]
struct Parser {
    results: Vec<KtapResult>,
    /// Indentation of the top-level version line, once seen.
    base: Option<usize>,
    plan: Option<usize>,
    seen: usize,
    block: Option<Block>,
    line: usize,
}

/// An open subtest block (a suite).
#[derive(Default)]
struct Block {
    indent: usize,
    header: Option<String>,
    plan: Option<usize>,
    cases: Vec<(String, Outcome)>,
}

impl Parser {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Ktap {
            line: self.line,
            message: message.into(),
        }
    }

    fn line(&mut self, number: usize, line: &str) -> Result<()> {
        self.line = number;
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if body.is_empty() {
            return Ok(());
        }
        let Some(base) = self.base else {
            if is_version(body) {
                self.base = Some(indent);
            }
            return Ok(());
        };
        if indent < base {
            return Ok(());
        }
        let deeper = |b: &Option<Block>| b.as_ref().is_some_and(|b| indent > b.indent);
        if is_version(body) {
            match &self.block {
                None if indent > base => {
                    self.block = Some(Block {
                        indent,
                        ..Block::default()
                    })
                }
                Some(_) if deeper(&self.block) => {}
                // Old style: "# Subtest:" opened the block before its version line.
                Some(b) if b.indent == indent && b.plan.is_none() && b.cases.is_empty() => {}
                _ => return Err(self.err("unexpected version line")),
            }
        } else if let Some(name) = body.strip_prefix("# Subtest:") {
            if self.block.is_none() && indent > base {
                self.block = Some(Block {
                    indent,
                    ..Block::default()
                });
            }
            if let Some(block) = self.block.as_mut().filter(|b| b.indent == indent) {
                block.header = Some(name.trim().to_string());
            }
        } else if body.starts_with('#') {
            // Other diagnostics carry no results.
        } else if let Some(n) = parse_plan(body) {
            match self.block.as_mut() {
                _ if indent == base => self.plan = Some(n),
                Some(block) if block.indent == indent => block.plan = Some(n),
                _ => {}
            }
        } else if let Some(result) = parse_result(body) {
            let (number, name, outcome) = result.map_err(|m| self.err(m))?;
            if indent == base {
                self.top_result(number, name, outcome)?;
            } else if let Some(block) = self.block.as_mut().filter(|b| b.indent == indent) {
                if number != block.cases.len() + 1 {
                    let expected = block.cases.len() + 1;
                    return Err(self.err(format!("case number {number}, expected {expected}")));
                }
                block.cases.push((name, outcome));
            } else if !deeper(&self.block) {
                return Err(self.err("result line outside a subtest"));
            }
        }
        Ok(())
    }

    fn top_result(&mut self, number: usize, name: String, outcome: Outcome) -> Result<()> {
        if number != self.seen + 1 {
            let expected = self.seen + 1;
            return Err(self.err(format!("test number {number}, expected {expected}")));
        }
        self.seen += 1;
        let Some(block) = self.block.take() else {
            self.results.push((name.clone(), name, outcome));
            return Ok(());
        };
        let suite = match (name.is_empty(), block.header) {
            (true, Some(header)) => header,
            _ => name,
        };
        if let Some(plan) = block.plan.filter(|&p| p != block.cases.len()) {
            let got = block.cases.len();
            return Err(self.err(format!("suite {suite}: plan 1..{plan}, {got} results")));
        }
        if block.cases.is_empty() {
            self.results.push((suite.clone(), suite, outcome));
            return Ok(());
        }
        for (case, outcome) in block.cases {
            self.results.push((suite.clone(), case, outcome));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<KtapResult>> {
        self.line += 1;
        if self.base.is_none() {
            return Err(self.err("no KTAP version line"));
        }
        if let Some(block) = &self.block {
            let name = block.header.clone().unwrap_or_default();
            return Err(self.err(format!("subtest {name} has no result line")));
        }
        if let Some(plan) = self.plan.filter(|&p| p != self.seen) {
            return Err(self.err(format!("plan 1..{plan}, {} results", self.seen)));
        }
        Ok(self.results)
    }
}

fn is_version(body: &str) -> bool {
    matches!(body, "KTAP version 1" | "TAP version 13" | "TAP version 14")
}

fn parse_plan(body: &str) -> Option<usize> {
    body.strip_prefix("1..")?.parse().ok()
}

type ParsedResult = std::result::Result<(usize, String, Outcome), String>;

/// `ok|not ok <n> [- ]<name> [# DIRECTIVE ...]`; `None` if not a result line.
fn parse_result(body: &str) -> Option<ParsedResult> {
    let (ok, rest) = if let Some(rest) = body.strip_prefix("not ok") {
        (false, rest)
    } else {
        (true, body.strip_prefix("ok")?)
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let (head, directive) = match rest.split_once('#') {
        Some((head, directive)) => (head, Some(directive.trim_start())),
        None => (rest, None),
    };
    let head = head.trim();
    let (number, name) = head.split_once(' ').unwrap_or((head, ""));
    let Ok(number) = number.parse::<usize>() else {
        return Some(Err(format!("bad test number in {body:?}")));
    };
    let name = name.trim_start();
    let name = name.strip_prefix("- ").unwrap_or(name).trim().to_string();
    let word = directive
        .and_then(|d| d.split_whitespace().next())
        .map(str::to_ascii_uppercase);
    let outcome = match (word.as_deref(), ok) {
        (Some("SKIP"), _) => Outcome::Skip,
        (Some("XFAIL"), _) => Outcome::Xfail,
        (Some("TODO"), false) => Outcome::Xfail,
        (Some("TIMEOUT"), _) => Outcome::Timeout,
        (Some("ERROR"), _) => Outcome::Error,
        (Some("XPASS"), _) => Outcome::Xpass,
        (_, true) => Outcome::Pass,
        (_, false) => Outcome::Fail,
    };
    Some(Ok((number, name, outcome)))
}

#[cfg(test)]
#[path = "ktap_tests.rs"]
mod tests;
