//! `--fmap-dump`.
