//! What a case runs with: the famfs-fused server and the case's context ([`famfs`]), checks
//! that keep going ([`check`]), and the GET_FMAP blobs of the negative and fuzz cases
//! ([`blobs`]).

pub mod blobs;
pub mod check;
pub mod famfs;
