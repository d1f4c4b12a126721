//! Data-file header errors (from the compile-time probe, which the
//! loader's readers share) as the one error of the later stages.

use crate::diagnostics::{Error, ErrorKind};
use crate::source::probe::{ProbeError, ProbeErrorKind};

impl From<ProbeError> for Error {
    fn from(e: ProbeError) -> Error {
        let kind = match e.kind {
            ProbeErrorKind::Io => ErrorKind::DataIo,
            ProbeErrorKind::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::DataFormat,
        };
        let mut out = Error::new(kind, e.message);
        out.places.file = e.path;
        out
    }
}
