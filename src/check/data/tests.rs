//! Specs read from small experiments checked in memory.

use super::*;
use crate::diagnostics::Diagnostic;
use crate::ir::data::{Axis, CompareOp, Cond, Origin, SourceKind, SplitRule};
use crate::ir::ModalityKind;
use crate::resolve::Options;
use crate::source::MemoryLoader;
use std::path::PathBuf;

/// The spec of `text` checked in memory, with paths against `/data/exp`.
fn spec(text: &str) -> Result<DataSpec, Vec<Diagnostic>> {
    let mut loader = MemoryLoader::new();
    loader.insert("exp/main.enigma", text.to_string());
    let program = crate::resolve::load(&loader, Path::new("exp/main.enigma"), &Options::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!program.has_errors(), "{:?}", program.diagnostics);
    let (diags, x) = crate::check::check_program(&program, &loader, &[]);
    let x = x.unwrap_or_else(|| panic!("{diags:?}"));
    data_spec(&program, &x.graph, Path::new("/data/exp"))
}

/// The first problem's message, which must be an E0221.
fn first(e: &[Diagnostic]) -> String {
    let d = e.first().unwrap_or_else(|| panic!("no problem"));
    assert_eq!(d.code, crate::diagnostics::Code::E0221);
    d.message.clone()
}

const HEAD: &str = "dim T = 2s\ndim N per session\n";

#[test]
fn sources_windows_and_modalities_are_read() {
    let s = spec(&format!(
        "{HEAD}data v1 = synthetic.mouse_v1(sessions: 2, neurons: 8, seed: 3) {{\n  window: T\n  stride: 500ms\n  split: by_session(train: 0.5, val: 0.5)\n}}\n\
         data m = npy(\"m.npy\", axes: [N, 2])\n\
         modality r: series<f32>[T @ 8Hz, N] from v1.response | select(N, where: not (m[.., 0] <= 0.5)) | zscore()\n"
    ))
    .unwrap();
    assert_eq!(
        s.sources[0].kind,
        SourceKind::Synthetic {
            sessions: 2,
            neurons: vec![8],
            seed: 3,
            frame: (36, 64),
        }
    );
    let w = s.sources[0].window.as_ref().unwrap();
    assert_eq!((w.length, w.stride), (2.0, 0.5));
    assert_eq!(w.rule, SplitRule::BySession([0.5, 0.5, 0.0]));
    assert_eq!(
        s.sources[1].kind,
        SourceKind::Npy {
            paths: vec![PathBuf::from("/data/exp/m.npy")],
            axes: Some(vec![Axis::Dim("N".into()), Axis::Size(2)]),
            rate: None
        }
    );
    assert!(s.sources[1].window.is_none());
    let r = &s.modalities[0];
    assert_eq!(r.input, Some(0));
    assert_eq!(s.inputs, [0]);
    assert_eq!(r.dims[0].size, Some(16));
    assert!(r.dims[0].time && r.dims[1].per_session && r.per_session());
    assert_eq!(r.rate, Some(8.0));
    assert_eq!(
        r.select[0].cond,
        Cond::Not(Box::new(Cond::Compare {
            source: 1,
            field: vec![],
            index: vec![None, Some(0)],
            op: CompareOp::Le,
            value: 0.5
        }))
    );
    assert_eq!(r.transforms.len(), 1);
}

/// The codes `enigma check` reports for `text`.
fn check_codes(text: &str) -> Vec<crate::diagnostics::Code> {
    let mut loader = MemoryLoader::new();
    loader.insert("exp/main.enigma", text.to_string());
    let program = crate::resolve::load(&loader, Path::new("exp/main.enigma"), &Options::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let (diags, _) = crate::check::check_program(&program, &loader, &[]);
    diags.iter().map(|d| d.code).collect()
}

#[test]
fn data_block_mistakes_are_found_by_the_checker() {
    use crate::diagnostics::Code;
    let with = |settings: &str| {
        format!(
            "{HEAD}data v1 = synthetic.mouse_v1(sessions: 1, neurons: 8, seed: 3) {{ {settings} }}\n\
             modality r: series<f32>[T @ 8Hz, N] from v1.response\n"
        )
    };
    assert_eq!(check_codes(&with("window: T, pace: 2s")), [Code::E0207]);
    assert_eq!(
        check_codes(&with("window: T, split: by_time(train: 0.5, rest: 0.5)")),
        [Code::E0208]
    );
    // Percentages where fractions are meant, and fractions that do not add up.
    assert_eq!(
        check_codes(&with(
            "window: T, split: by_time(train: 80, val: 10, test: 10)"
        )),
        [Code::E0208]
    );
    assert_eq!(
        check_codes(&with(
            "window: T, split: by_time(train: 0.8, val: 0.1, test: 0.2)"
        )),
        [Code::E0208]
    );
    assert!(check_codes(&with("window: T, split: by_session(train: 0.5, val: 0.5)")).is_empty());
}

#[test]
fn what_the_loader_cannot_serve_is_refused_with_the_item() {
    let e = spec(&format!(
        "{HEAD}data v1 = synthetic.mouse_v1(sessions: 1, neurons: 8, seed: 3) {{ window: T }}\n\
         modality r: series<f32>[T @ 8Hz, N] from v1.response | select(N, where: 3 > 2)\n"
    ))
    .unwrap_err();
    assert!(first(&e).starts_with("modality `r`: a `where:`"), "{e:?}");
}

#[test]
fn defaults_derived_modalities_and_file_sources() {
    let s = spec(&format!(
        "{HEAD}data rec = nwb(\"rec.nwb\") {{ window: T, within: ep }}\n\
         modality spikes: events<f64>[T, N] from rec.units.spike_times\n\
         modality counts: series<f32>[T @ 50Hz, N] from spikes | bin(20ms)\n\
         modality ep: intervals<f64>[N] from rec.intervals.epochs\n"
    ))
    .unwrap();
    let w = s.sources[0].window.as_ref().unwrap();
    // The stride defaults to the window, the split to 80/10/10 by time.
    assert_eq!((w.length, w.stride), (2.0, 2.0));
    assert_eq!(w.rule, SplitRule::ByTime([0.8, 0.1, 0.1]));
    assert_eq!(w.within.as_deref(), Some("ep"));
    assert_eq!(
        s.sources[0].kind,
        SourceKind::Nwb {
            paths: vec![PathBuf::from("/data/exp/rec.nwb")],
            rate: None
        }
    );
    let spikes = &s.modalities[0];
    assert_eq!(spikes.kind, ModalityKind::Events);
    assert_eq!(
        spikes.origin,
        Origin::Source {
            source: 0,
            field: vec!["units".into(), "spike_times".into()]
        }
    );
    // The events' window has no sample count; `T` is still their time.
    assert!(spikes.dims[0].time && spikes.dims[0].size.is_none());
    let counts = &s.modalities[1];
    assert_eq!(counts.origin, Origin::Modality(0));
    assert_eq!((counts.rate, counts.dims[0].size), (Some(50.0), Some(100)));
    assert_eq!(s.modality_index("ep"), Some(2));
    assert_eq!(s.inputs, [0, 1, 2]);
}

#[test]
fn file_sources_take_lists_and_suite2p_folders() {
    let s = spec(&format!(
        "{HEAD}data p = suite2p([\"s2p/a\", \"s2p/b*\"], rate: 30Hz) {{ window: T }}\n\
         data q = npy(\"ses-*/F.npy\", axes: [N, T], rate: 8Hz) {{ window: T }}\n\
         modality r: series<f32>[T @ 8Hz, N] from p.F | select(N, where: p.iscell[.., 0] > 0.5) | resample(8Hz)\n"
    ))
    .unwrap();
    assert_eq!(
        s.sources[0].kind,
        SourceKind::Suite2p {
            paths: vec![
                PathBuf::from("/data/exp/s2p/a"),
                PathBuf::from("/data/exp/s2p/b*")
            ],
            rate: Some(30.0)
        }
    );
    assert_eq!(
        s.sources[1].kind.paths(),
        [PathBuf::from("/data/exp/ses-*/F.npy")]
    );
    assert!(matches!(
        &s.modalities[0].select[0].cond,
        Cond::Compare { source: 0, field, .. } if field == &["iscell".to_string()]
    ));
}

#[test]
fn a_block_without_a_window_is_named() {
    let e = spec(&format!(
        "{HEAD}data v1 = synthetic.mouse_v1(sessions: 1, neurons: 8, seed: 3) {{ stride: 1s }}\n\
         modality r: series<f32>[T @ 8Hz, N] from v1.response\n"
    ))
    .unwrap_err();
    assert!(first(&e).contains("need a `window:` length"), "{e:?}");
}
