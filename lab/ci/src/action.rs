//! Structural checks of a composite action (`ci/action.yml`), which
//! actionlint does not lint: the keys GitHub accepts, `runs.using:
//! composite`, every `inputs.X` used in an expression is declared and every
//! declared input is used, the inputs a caller must give are `required`,
//! every `run` step has its `shell`, and no script interpolates an input
//! (`${{ inputs.X }}` inside `run:` is pasted into the script before bash
//! reads it: inputs reach scripts through `env:`).

use crate::error::{Error, Problem, Result};
use crate::locate::UniqueMap;
use crate::locate::{line_of, path, KeyPath};
use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeSet;

/// The action, relative to the repository root.
pub const ACTION_FILE: &str = "ci/action.yml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    #[allow(dead_code)]
    author: Option<String>,
    #[serde(default)]
    inputs: UniqueMap<InputFile>,
    #[serde(default)]
    #[allow(dead_code)]
    outputs: Option<Value>,
    runs: RunsFile,
    #[serde(default)]
    #[allow(dead_code)]
    branding: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFile {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default, rename = "deprecationMessage")]
    #[allow(dead_code)]
    deprecation_message: Option<String>,
}

/// Not `deny_unknown_fields`: a JavaScript or Docker action has other
/// keys, and should be told it is not composite rather than that `main`
/// is unknown.
#[derive(Debug, Deserialize)]
struct RunsFile {
    using: String,
    #[serde(default)]
    steps: Vec<StepFile>,
}

/// The keys a composite action's step may have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct StepFile {
    id: Option<String>,
    name: Option<String>,
    #[serde(rename = "if")]
    condition: Option<Value>,
    run: Option<String>,
    shell: Option<String>,
    uses: Option<String>,
    with: Option<Value>,
    env: Option<Value>,
    working_directory: Option<String>,
    continue_on_error: Option<Value>,
}

/// What the check learned about the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    /// Declared inputs, in file order.
    pub inputs: Vec<String>,
    /// Those declared `required: true`.
    pub required: Vec<String>,
    /// Inputs referred to by some expression.
    pub used: BTreeSet<String>,
}

/// Checks `text` (named `file` in messages); `required` are the inputs a
/// caller must give.
pub fn check(text: &str, file: &str, required: &[&str]) -> Result<ActionInfo> {
    let raw: ActionFile = serde_norway::from_str(text).map_err(|e| Error::parse(file, &e))?;
    let doc: Value = serde_norway::from_str(text).map_err(|e| Error::parse(file, &e))?;
    let mut problems: Vec<(KeyPath, String)> = Vec::new();

    if raw.runs.using != "composite" {
        problems.push((
            path("runs").key("using"),
            format!("{:?}: this action must be `composite`", raw.runs.using),
        ));
    } else if raw.runs.steps.is_empty() {
        problems.push((
            path("runs").key("steps"),
            "a composite action needs steps".into(),
        ));
    }
    for (i, step) in raw.runs.steps.iter().enumerate() {
        let at = path("runs").key("steps").index(i);
        match (&step.run, &step.uses) {
            (Some(_), Some(_)) | (None, None) => {
                problems.push((at.clone(), "a step has either `run` or `uses`".into()))
            }
            (Some(_), None) if step.shell.is_none() => problems.push((
                at.clone(),
                "a composite action's `run` step needs `shell`".into(),
            )),
            _ => {}
        }
    }

    let declared: Vec<String> = raw.inputs.keys().map(String::from).collect();
    for name in required {
        match raw.inputs.get(name) {
            None => problems.push((
                path("inputs"),
                format!("the required input {name:?} is not declared"),
            )),
            Some(input) if !input.required => problems.push((
                path("inputs").key(name),
                format!("{name:?} must be `required: true`"),
            )),
            Some(_) => {}
        }
    }
    for (name, input) in &raw.inputs.0 {
        if input.required && input.default.is_some() {
            problems.push((
                path("inputs").key(name).key("default"),
                "a required input with a default is never required: drop one".into(),
            ));
        }
    }

    let mut used = BTreeSet::new();
    walk(&doc, &KeyPath::root(), false, &mut |at, text, in_if| {
        let exprs: Vec<&str> = if in_if && !text.contains("${{") {
            vec![text]
        } else {
            expressions(text)
        };
        for expr in exprs {
            for name in input_refs(expr) {
                if !declared.contains(&name) {
                    problems.push((
                        at.clone(),
                        format!("`inputs.{name}` is not a declared input"),
                    ));
                }
                used.insert(name);
            }
        }
        let in_script = matches!(at.0.last(), Some(crate::locate::Seg::Key(k)) if k == "run");
        if in_script && expressions(text).iter().any(|e| !input_refs(e).is_empty()) {
            problems.push((
                at.clone(),
                "a script must not interpolate inputs: pass them through `env:`".into(),
            ));
        }
    });
    for name in &declared {
        if !used.contains(name) {
            problems.push((
                path("inputs").key(name),
                format!("{name:?} is declared but never used"),
            ));
        }
    }

    if !problems.is_empty() {
        return Err(Error::Invalid {
            file: file.to_string(),
            problems: problems
                .into_iter()
                .map(|(key, message)| Problem {
                    line: line_of(text, &key),
                    key: key.to_string(),
                    message,
                })
                .collect(),
        });
    }
    let required = raw
        .inputs
        .0
        .iter()
        .filter(|(_, i)| i.required)
        .map(|(n, _)| n.clone())
        .collect();
    Ok(ActionInfo {
        inputs: declared,
        required,
        used,
    })
}

/// Calls `f(path, string, is_if)` on every string of the document (`is_if`:
/// the value of an `if:`, an expression even without `${{ }}`).
fn walk(v: &Value, at: &KeyPath, is_if: bool, f: &mut dyn FnMut(&KeyPath, &str, bool)) {
    match v {
        Value::String(s) => f(at, s, is_if),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &at.index(i), false, f);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                if let Some(k) = k.as_str() {
                    walk(item, &at.key(k), k == "if", f);
                }
            }
        }
        Value::Tagged(t) => walk(&t.value, at, is_if, f),
        _ => {}
    }
}

/// The insides of every `${{ ... }}` in `s`.
fn expressions(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        out.push(&after[..end]);
        rest = &after[end + 2..];
    }
    out
}

/// The `X` of every `inputs.X` in an expression (not `github.event.inputs.X`).
fn input_refs(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut from = 0;
    while let Some(i) = expr[from..].find("inputs.").map(|i| i + from) {
        let starts_word =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || b"._-".contains(&bytes[i - 1]));
        let name: String = expr[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if starts_word && !name.is_empty() {
            out.push(name);
        }
        from = i + 7;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name: t
description: d
inputs:
  kernel-tree:
    description: the tree
    required: true
  accel:
    description: kvm or tcg
    default: tcg
runs:
  using: composite
  steps:
    - name: check
      if: inputs.accel != 'tcg'
      shell: bash
      env:
        TREE: ${{ inputs.kernel-tree }}
      run: test -n "$TREE"
    - uses: actions/upload-artifact@v7
      with:
        name: x-${{ inputs.accel }}
"#;

    fn problems(text: &str) -> Vec<(Option<usize>, String, String)> {
        match check(text, "ci/action.yml", &["kernel-tree"]) {
            Err(Error::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| (p.line, p.key, p.message))
                .collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_good_action_passes() {
        let info = check(GOOD, "a.yml", &["kernel-tree"]).unwrap();
        assert_eq!(info.inputs, ["kernel-tree", "accel"]);
        assert_eq!(info.required, ["kernel-tree"]);
        assert_eq!(
            info.used.iter().collect::<Vec<_>>(),
            ["accel", "kernel-tree"]
        );
    }

    #[test]
    fn expressions_and_references() {
        assert_eq!(expressions("a ${{ x }} b ${{y}}"), [" x ", "y"]);
        assert_eq!(
            input_refs(" inputs.a-b && github.event.inputs.c || format('{0}', inputs.d_e) "),
            ["a-b", "d_e"]
        );
        assert!(input_refs("myinputs.x").is_empty());
    }

    #[test]
    fn each_problem_has_its_line() {
        let cases: &[(&str, &str, usize, &str, &str)] = &[
            (
                "using: composite",
                "using: node20",
                11,
                "runs.using",
                "must be `composite`",
            ),
            (
                "${{ inputs.accel }}",
                "${{ inputs.acel }}",
                21,
                "runs.steps[1].with.name",
                "`inputs.acel` is not a declared input",
            ),
            (
                "if: inputs.accel != 'tcg'",
                "if: inputs.topology != ''",
                14,
                "runs.steps[0].if",
                "`inputs.topology` is not a declared input",
            ),
            (
                "      shell: bash\n",
                "",
                13,
                "runs.steps[0]",
                "needs `shell`",
            ),
            (
                "    required: true\n",
                "",
                5,
                "inputs.kernel-tree",
                "must be `required: true`",
            ),
            (
                "    required: true\n",
                "    required: true\n    default: .\n",
                7,
                "inputs.kernel-tree.default",
                "never required",
            ),
            (
                "run: test -n \"$TREE\"",
                "run: test -n \"${{ inputs.kernel-tree }}\"",
                18,
                "runs.steps[0].run",
                "through `env:`",
            ),
        ];
        for (from, to, line, key, needle) in cases {
            assert!(GOOD.contains(from), "{from}");
            let ps = problems(&GOOD.replacen(from, to, 1));
            let hit = ps.iter().find(|(_, k, m)| k == key && m.contains(needle));
            let Some((l, _, _)) = hit else {
                panic!("{to:?}: no {key} {needle:?} in {ps:?}")
            };
            assert_eq!(*l, Some(*line), "{to:?}: {ps:?}");
        }
    }

    #[test]
    fn undeclared_required_and_unused_inputs_are_problems() {
        let text = GOOD.replace("kernel-tree", "tree");
        let ps = problems(&text);
        assert!(
            ps.iter().any(|(l, k, m)| *l == Some(4)
                && k == "inputs"
                && m.contains("\"kernel-tree\" is not declared")),
            "{ps:?}"
        );
        let unused = GOOD.replace("  accel:\n", "  unused:\n    description: u\n  accel:\n");
        let ps = problems(&unused);
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert_eq!((ps[0].0, ps[0].1.as_str()), (Some(8), "inputs.unused"));
    }

    #[test]
    fn unknown_keys_are_parse_errors_with_lines() {
        for (from, to, line) in [
            ("description: d\n", "description: d\nversion: 2\n", 3),
            (
                "      shell: bash\n",
                "      shell: bash\n      timeout-minutes: 5\n",
                16,
            ),
            (
                "    default: tcg\n",
                "    default: tcg\n    type: string\n",
                10,
            ),
        ] {
            let e = check(&GOOD.replacen(from, to, 1), "ci/action.yml", &[]).unwrap_err();
            assert!(
                matches!(e, Error::Parse { line: Some(l), .. } if l == line),
                "{to:?}: {e}"
            );
        }
    }

    #[test]
    fn the_repository_action_is_a_valid_composite_action() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(ACTION_FILE);
        let text = std::fs::read_to_string(&file).unwrap();
        let info = check(&text, ACTION_FILE, &["kernel-tree"]).unwrap_or_else(|e| panic!("{e}"));
        for input in [
            "kernel-tree",
            "patches",
            "fragments",
            "suites",
            "topology",
            "accel",
            "lab-ref",
        ] {
            assert!(
                info.inputs.iter().any(|i| i == input),
                "{input} is not an input of {ACTION_FILE}"
            );
        }
        assert_eq!(info.required, ["kernel-tree"]);
    }
}
