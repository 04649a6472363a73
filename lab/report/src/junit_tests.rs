use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::*;
use crate::fixture::report;

const GOLDEN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="run-42" tests="7" failures="2" errors="2" skipped="2" time="42.005">
  <testsuite name="fmap" tests="4" failures="1" errors="1" skipped="1" time="30.112" timestamp="2025-03-01T12:00:00Z">
    <properties>
      <property name="kernel" value="6.14.0-famfs"/>
      <property name="kernel_hash" value="abc123"/>
      <property name="topology" value="dax1"/>
      <property name="accel" value="kvm"/>
      <property name="qemu" value="9.2.0"/>
    </properties>
    <testcase classname="famfs-lab.fmap" name="read basic" time="0.012"/>
    <testcase classname="famfs-lab.fmap" name="write#2" time="0.100">
      <failure message="short write: 10 &lt; 4096" type="fail">expected &lt;4096&gt;
got &amp; 10</failure>
      <system-out>expected &lt;4096&gt;
got &amp; 10</system-out>
    </testcase>
    <testcase classname="famfs-lab.fmap" name="dax-huge" time="0.000">
      <skipped message="no 1G pages"/>
    </testcase>
    <testcase classname="famfs-lab.fmap" name="truncate" time="30.000">
      <error message="timed out after 30s" type="timeout"/>
      <system-err>splat: warning at log line 7
WARNING: CPU: 0 PID: 9 at fs/fuse/famfs.c:10 f+0x1/0x2
---[ end trace 0000000000000000 ]---</system-err>
    </testcase>
  </testsuite>
  <testsuite name="meta" tests="3" failures="1" errors="1" skipped="1" time="0.015" timestamp="2025-03-01T12:00:00Z">
    <properties>
      <property name="kernel" value="6.14.0-famfs"/>
      <property name="kernel_hash" value="abc123"/>
      <property name="topology" value="dax1"/>
      <property name="accel" value="kvm"/>
      <property name="qemu" value="9.2.0"/>
    </properties>
    <testcase classname="famfs-lab.meta" name="mount" time="0.005">
      <error message="agent died restart" type="error">bell \x07 "char"</error>
      <system-out>bell \x07 "char"</system-out>
    </testcase>
    <testcase classname="famfs-lab.meta" name="known-bug" time="0.007">
      <skipped message="xfail: bz#123"/>
    </testcase>
    <testcase classname="famfs-lab.meta" name="fixed?" time="0.003">
      <failure message="unexpected pass" type="xpass"/>
    </testcase>
  </testsuite>
</testsuites>
"#;

#[test]
fn golden() {
    assert_eq!(write(&report()).expect("junit"), GOLDEN);
}

/// Element name -> count, text of every text node, and the root's attributes.
struct Parsed {
    elements: BTreeMap<String, usize>,
    texts: Vec<String>,
    root: BTreeMap<String, String>,
    messages: Vec<String>,
}

fn parse(xml: &str) -> Parsed {
    let mut reader = Reader::from_str(xml);
    let mut parsed = Parsed {
        elements: BTreeMap::new(),
        texts: Vec::new(),
        root: BTreeMap::new(),
        messages: Vec::new(),
    };
    // Text arrives in pieces: character data and, apart, each entity reference.
    let mut text = String::new();
    loop {
        let event = reader.read_event().expect("well-formed XML");
        match &event {
            Event::Text(t) => {
                text.push_str(&t.xml10_content());
                continue;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().expect("character reference") {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .expect("a predefined entity")
                        .to_string(),
                };
                text.push_str(&c);
                continue;
            }
            _ => {}
        }
        if !text.trim().is_empty() {
            parsed.texts.push(std::mem::take(&mut text));
        }
        text.clear();
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().into_inner().to_string();
                for a in e.attributes() {
                    let a = a.expect("attribute");
                    let key = a.key.into_inner().to_string();
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("value")
                        .into_owned();
                    if name == "testsuites" {
                        parsed.root.insert(key.clone(), value.clone());
                    }
                    if key == "message" {
                        parsed.messages.push(value);
                    }
                }
                *parsed.elements.entry(name).or_default() += 1;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    parsed
}

#[test]
fn well_formed_with_expected_elements() {
    let p = parse(&write(&report()).expect("junit"));
    let count = |name: &str| p.elements.get(name).copied().unwrap_or(0);
    assert_eq!(count("testsuites"), 1);
    assert_eq!(count("testsuite"), 2);
    assert_eq!(count("testcase"), 7);
    assert_eq!(count("failure"), 2);
    assert_eq!(count("error"), 2);
    assert_eq!(count("skipped"), 2);
    assert_eq!(count("system-out"), 2);
    assert_eq!(count("system-err"), 1);
    assert_eq!(count("property"), 10);
    let root: Vec<_> = p
        .root
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        root,
        [
            ("errors", "2"),
            ("failures", "2"),
            ("name", "run-42"),
            ("skipped", "2"),
            ("tests", "7"),
            ("time", "42.005")
        ]
    );
    assert!(p.texts.contains(&"expected <4096>\ngot & 10".to_string()));
    assert!(p.texts.contains(&"bell \\x07 \"char\"".to_string()));
    assert!(p.messages.contains(&"agent died restart".to_string()));
    assert!(p.messages.contains(&"short write: 10 < 4096".to_string()));
}

#[test]
fn forbidden_characters_are_replaced_everywhere() {
    let mut r = report();
    r.run_id = "run\u{1b}[0m".into();
    r.suites[0].name = "s\u{0}".into();
    r.suites[0].cases[1].diagnostics = vec!["\u{1b}[31mred\u{1b}[0m \u{fffe} ok\ttab".into()];
    r.suites[0].cases[1].reason = Some("nul\u{0}byte\u{ffff}".into());
    let xml = write(&r).expect("junit");
    assert!(!xml.chars().any(|c| !xml_allowed(c)), "{xml}");
    let p = parse(&xml);
    assert_eq!(p.root["name"], "run\\x1b[0m");
    assert!(p
        .texts
        .contains(&"\\x1b[31mred\\x1b[0m \\u{fffe} ok\ttab".to_string()));
    assert!(p.messages.contains(&"nul\\x00byte\\u{ffff}".to_string()));
}

#[test]
fn xml_chars_borrows_clean_text() {
    assert!(matches!(xml_chars("plain <&> text\n"), Cow::Borrowed(_)));
    assert_eq!(xml_chars("a\u{8}b"), "a\\x08b");
    assert_eq!(attr("a\nb\tc"), "a b c");
}
