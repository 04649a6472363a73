//! JUnit XML writer: one `<testsuite>` per suite, one `<testcase>` per case.

use std::borrow::Cow;

use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::error::Result;
use crate::model::{CaseReport, Counts, Outcome, RunReport, SuiteReport};

/// Prefix of every `classname`.
pub const CLASSNAME_PREFIX: &str = "famfs-lab.";

/// Renders the run as a JUnit XML document.
pub fn write(report: &RunReport) -> Result<String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", attr(&report.run_id).as_ref()));
    push_counts(&mut root, report.counts());
    root.push_attribute(("time", seconds(report.duration_ms).as_str()));
    w.write_event(Event::Start(root))?;
    for suite in &report.suites {
        write_suite(&mut w, report, suite)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    let mut xml = String::from_utf8_lossy(&w.into_inner()).into_owned();
    xml.push('\n');
    Ok(xml)
}

fn write_suite(w: &mut Writer<Vec<u8>>, report: &RunReport, suite: &SuiteReport) -> Result<()> {
    let mut start = BytesStart::new("testsuite");
    start.push_attribute(("name", attr(&suite.name).as_ref()));
    push_counts(&mut start, suite.counts());
    start.push_attribute(("time", seconds(suite.duration_ms()).as_str()));
    start.push_attribute(("timestamp", attr(&report.started_at).as_ref()));
    w.write_event(Event::Start(start))?;

    w.write_event(Event::Start(BytesStart::new("properties")))?;
    let fixed = [
        ("kernel", &report.kernel),
        ("kernel_hash", &report.kernel_hash),
        ("topology", &report.topology),
        ("accel", &report.accel),
    ];
    for (name, value) in fixed
        .into_iter()
        .chain(report.meta.iter().map(|(k, v)| (k.as_str(), v)))
    {
        let mut prop = BytesStart::new("property");
        prop.push_attribute(("name", attr(name).as_ref()));
        prop.push_attribute(("value", attr(value).as_ref()));
        w.write_event(Event::Empty(prop))?;
    }
    w.write_event(Event::End(BytesEnd::new("properties")))?;

    let classname = format!("{CLASSNAME_PREFIX}{}", suite.name);
    for case in &suite.cases {
        write_case(w, &classname, case)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, classname: &str, case: &CaseReport) -> Result<()> {
    let mut start = BytesStart::new("testcase");
    start.push_attribute(("classname", attr(classname).as_ref()));
    start.push_attribute(("name", attr(&case.name).as_ref()));
    start.push_attribute(("time", seconds(case.duration_ms).as_str()));

    let diagnostics = case.diagnostics.join("\n");
    let splats: Vec<String> = case
        .splats
        .iter()
        .flat_map(|s| {
            let head = format!("splat: {} at log line {}", s.kind, s.line);
            std::iter::once(head).chain(s.excerpt.iter().cloned())
        })
        .collect();
    let verdict = verdict(case);
    if verdict.is_none() && diagnostics.is_empty() && splats.is_empty() {
        w.write_event(Event::Empty(start))?;
        return Ok(());
    }
    w.write_event(Event::Start(start))?;
    if let Some((tag, kind, message)) = verdict {
        let mut el = BytesStart::new(tag);
        el.push_attribute(("message", attr(&message).as_ref()));
        if let Some(kind) = kind {
            el.push_attribute(("type", kind));
        }
        text_element(w, el, tag, &diagnostics)?;
    }
    text_element(w, BytesStart::new("system-out"), "system-out", &diagnostics)?;
    text_element(
        w,
        BytesStart::new("system-err"),
        "system-err",
        &splats.join("\n"),
    )?;
    w.write_event(Event::End(BytesEnd::new("testcase")))?;
    Ok(())
}

/// (element, type attribute, message) for a case that did not simply pass.
fn verdict(case: &CaseReport) -> Option<(&'static str, Option<&'static str>, String)> {
    let reason = |default: &str| case.reason.clone().unwrap_or_else(|| default.to_string());
    Some(match case.outcome {
        Outcome::Pass => return None,
        Outcome::Fail => ("failure", Some("fail"), reason("failed")),
        Outcome::Xpass => ("failure", Some("xpass"), reason("unexpected pass")),
        Outcome::Timeout => ("error", Some("timeout"), reason("timed out")),
        Outcome::Error => ("error", Some("error"), reason("error")),
        Outcome::Skip => ("skipped", None, reason("skipped")),
        Outcome::Xfail => (
            "skipped",
            None,
            format!("xfail: {}", reason("expected failure")),
        ),
    })
}

/// `<tag ...>text</tag>`, `<tag .../>` for empty text with attributes, or
/// nothing for empty text without attributes.
fn text_element(w: &mut Writer<Vec<u8>>, start: BytesStart, tag: &str, text: &str) -> Result<()> {
    if text.is_empty() {
        if start.attributes().next().is_some() {
            w.write_event(Event::Empty(start))?;
        }
        return Ok(());
    }
    w.write_event(Event::Start(start))?;
    let text = xml_chars(text);
    w.write_event(Event::Text(BytesText::from_escaped(partial_escape(
        text.as_ref(),
    ))))?;
    w.write_event(Event::End(BytesEnd::new(tag)))?;
    Ok(())
}

fn push_counts(el: &mut BytesStart, c: Counts) {
    el.push_attribute(("tests", c.total().to_string().as_str()));
    el.push_attribute(("failures", (c.fail + c.xpass).to_string().as_str()));
    el.push_attribute(("errors", (c.timeout + c.error).to_string().as_str()));
    el.push_attribute(("skipped", (c.skip + c.xfail).to_string().as_str()));
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Replaces characters XML 1.0 forbids with a visible `\xNN` / `\u{NNNN}`.
pub fn xml_chars(text: &str) -> Cow<'_, str> {
    if text.chars().all(xml_allowed) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if xml_allowed(c) => out.push(c),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Attribute text: forbidden characters replaced, line breaks and tabs as
/// spaces (parsers would normalise them anyway).
fn attr(text: &str) -> Cow<'_, str> {
    let text = xml_chars(text);
    if !text.contains(['\t', '\n', '\r']) {
        return text;
    }
    Cow::Owned(text.replace(['\t', '\n', '\r'], " "))
}

#[cfg(test)]
#[path = "junit_tests.rs"]
mod tests;
