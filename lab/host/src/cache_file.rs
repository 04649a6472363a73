//! Small files of the lab's cache (a probe's verdict, a measurement, the last lookup of a
//! request), written whole.

use std::path::Path;

/// Writes `file` whole (a temporary file renamed over it), making its directory. A cache file
/// that cannot be written only costs another probe, measurement or lookup next time, so
/// failures are dropped.
pub fn write(file: &Path, text: &str) {
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    let written = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_whole_files_in_new_directories_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/c.yaml");
        super::write(&file, "one\n");
        super::write(&file, "two\n");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["c.yaml"]);
        // A file under a regular file cannot be written: dropped quietly.
        super::write(&file.join("x"), "three\n");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
    }
}
